"""The BPF collection itself: programs built against another kernel's headers.

Input: the manifest's ``bpf`` entry (``analysis.bpf_headers``)::

    "kernel": "6.18.44", "headers_release": "6.1.0-57-amd64",
    "header_layouts": {"bpf/reclaim": {"header_dependent": false, ...}, ...}
"""

from __future__ import annotations

from snapcollect.analysis.bpf_headers import consequence
from snapcollect.analysis.findings.rule import Hit, rule
from snapcollect.bundle.names import BPF_OOM_KILL, BPF_RECLAIM, MANIFEST


@rule(
    key="BPF_HEADERS_MISMATCH", area="bpf", severities=("INFO",),
    detects="bcc compiled the BPF programs against kernel headers of another release than the "
            "running kernel's (no headers for it were installed): a field read through a kernel "
            "struct would be at the wrong offset.",
    title="BPF built on {headers_release} headers, kernel {kernel}: {_effect}",
    explanation="bcc compiled the BPF programs against headers {headers_release}{_where}. Tracepoint "
                "fields are laid out from the running kernel's tracefs, so only kernel struct reads "
                "depend on the headers; here {_consequence}. Headers of the running kernel "
                "(apt-get install linux-headers-$(uname -r)) remove the doubt.",
    threshold="headers_release differs from kernel in the manifest's bpf entry, which has "
              "header_layouts, with any BPF artifact collected",
    source="bcc compiles against /lib/modules/$(uname -r)/build; tracepoint structs from tracefs "
           "(bcc tp_frontend_action)",
    # BPF ran: its two streams are there on any kernel with tracepoints; the
    # fact itself looks at every artifact collected
    needs=[(BPF_OOM_KILL, BPF_RECLAIM)], section="bpf-cost")
def bpf_headers_mismatch(m):
    h = m.bpf_headers
    # A bundle from before header_layouts cannot say more than the BPF
    # section's headers row does (the mismatch, and that it cannot tell).
    if h is None or not h.declared:
        return None
    effect = (f"{len(h.affected)} artifact(s) may be affected" if h.affected else
              "artifacts affected unknown" if h.unknown else "no artifact affected")
    return Hit("INFO", {
        "kernel": h.kernel, "headers_release": h.headers_release, "headers": h.headers,
        "affected": list(h.affected), "unaffected": list(h.unaffected), "unknown": list(h.unknown),
        "kernel_structs": list(h.kernel_structs),
        "_effect": effect, "_where": f" ({h.headers})" if h.headers else "", "_consequence": consequence(h),
    }, [MANIFEST, *h.affected], None)
