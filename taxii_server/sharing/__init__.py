"""Sharing rules a regulator can enforce, between policy and the store.

- identities.py  each operator's STIX identity, and each anonymous collection's own
- tlp.py         TLP 2.0 (and 1.0) markings against each collection's ceiling
- anonymity.py   hiding a licensee's identity, names and contact data in an anonymous collection
- scrubbing.py   removing text that matches patterns from every free-text property
- screening.py   the one entry point of a write: objects in, versions to store and refusals out
- republish.py   the regulator turning a licensee's report into an object of its own
- provenance.py  who stored each version of an object, for the regulator and administrators
- http.py, cli.py  the regulator's HTTP actions and the administrators' commands
"""
