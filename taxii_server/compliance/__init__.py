"""Compliance records: what the regulator must know about its licensees.

- deliveries.py       the first time each operator was sent each object version (read path)
- acknowledgements.py opinions and notes from licensees that name advisories
- sightings.py        sightings and false-positive opinions on indicators
- scope.py            which collections each record is about, from policy.py
- service.py          reads licensees' private collections for the above, settles, purges
- reports.py          the three reports, as plain rows
- metrics.py          delivery lag and last poll per licensee, for /metrics
- http.py, cli.py     the reports over HTTP (the regulator only) and on the command line
"""
