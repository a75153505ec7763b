"""Feeds: the collections' active indicators as plain lists for firewalls and DNS resolvers.

patterns.py reads plain values out of STIX patterns, safety.py holds back what would cut
a licensee off, index.py keeps each collection's feed entries current by reading what
was added since last time, formats.py writes the lists, http.py serves them under the
same keys and rights as TAXII, report.py says what was held back or left out and why.
"""
