"""SPF, DKIM, DMARC and ARC as a real provider does them, over the sandbox's own DNS.

The submission server signs (``signing``), each MX server checks (``check``), and every
reader shows the verdicts the MX wrote in ``Authentication-Results`` through one
function, ``sandbox.auth.verdicts.read_verdicts``. Every DNS answer comes from the stub,
asked over the wire (``lookup``); the system resolver is never used.

Submodules are imported where needed: ``settings`` is what configuration loading needs,
and it pulls in no crypto.
"""
