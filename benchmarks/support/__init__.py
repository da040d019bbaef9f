"""Helpers of the deployment benchmarks: a real platform (`berth up`), its REST API, its events, plain HTTP."""

# The benchmarks' git servers, S3 store and receivers listen on loopback, which the outbound rule
# (berth_common.outbound) refuses: every platform a benchmark starts allows loopback explicitly.
LOOPBACK_ALLOWED = {"BERTH_OUTBOUND_ALLOW": "127.0.0.0/8,::1/128"}
