"""Licenses as data: the terms we know, the floor a backbone sets, acceptance of restrictive terms
(`terms`), and the rules a publication must follow (`publication_rules`)."""
