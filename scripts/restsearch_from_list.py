#!/usr/bin/env python3
"""Writes a MISP restSearch answer for a plain indicator list, to measure loading MISP JSON at scale.

Usage: scripts/restsearch_from_list.py LIST OUT.json [--lean]
Each line of LIST (as make_speed.py writes it) becomes one attribute with the fields MISP 2.4 returns from
`POST /attributes/restSearch` (ids as strings, `Event` header, one tag), spread over 1,000 events; a /24 or an
address is `ip-dst`, a 64-digit hex value `sha256`, anything else `domain`. Deterministic. About 590 bytes an
attribute; `--lean` leaves out the `Event` header and the tags (about 330 bytes, the shape of a restSearch asked
for without them), for comparing files of one count and different weight.
"""
import json
import re
import sys
import uuid


def kind(v):
    if re.fullmatch(r'[0-9a-f]{64}', v):
        return 'sha256', 'Payload delivery'
    if re.fullmatch(r'[0-9.]+(/\d+)?', v):
        return 'ip-dst', 'Network activity'
    return 'domain', 'Network activity'


def main(src, out, lean=False):
    ns = uuid.UUID('6ba7b811-9dad-11d1-80b4-00c04fd430c8')
    with open(src) as f, open(out, 'w') as o:
        o.write('{"response": {"Attribute": [')
        n = 0
        for line in f:
            v = line.strip()
            if not v or v.startswith('#'):
                continue
            t, cat = kind(v)
            ev = n % 1000 + 1
            a = {
                'id': str(n + 1), 'event_id': str(ev), 'object_id': '0', 'object_relation': None,
                'category': cat, 'type': t, 'to_ids': True, 'uuid': str(uuid.uuid5(ns, 'a%d' % n)),
                'timestamp': str(1700000000 + n), 'distribution': '5', 'sharing_group_id': '0', 'comment': '',
                'deleted': False, 'disable_correlation': False, 'first_seen': None, 'last_seen': None, 'value': v,
                'Event': {'org_id': '1', 'distribution': '1', 'id': str(ev), 'info': 'Synthetic event %d' % ev,
                          'orgc_id': '1', 'uuid': str(uuid.uuid5(ns, 'e%d' % ev))},
                'Tag': [{'id': '1', 'name': 'tlp:green', 'colour': '#33FF00', 'numerical_value': None}],
            }
            if lean:
                del a['Event'], a['Tag']
            o.write((',' if n else '') + json.dumps(a, separators=(',', ':')))
            n += 1
        o.write(']}}\n')
    print('%s: %d attributes' % (out, n))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], '--lean' in sys.argv[3:])
