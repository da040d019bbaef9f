"""api: uploaded certificates (their keys sealed) and each host's certificate state."""

from berth_api.adapters import tls_tables as t
from berth_common.db.revision import steps, table

revision = "api_0020"
down_revision = "api_0019"
upgrade, downgrade = steps(
    table(
        t.certificates,
        "id team_id application_id name hosts names chain_pem sealed subject issuer not_before not_after "
        "fingerprint_sha256 key_type created_by created_at",
    ),
    table(
        t.certificate_states,
        "host server_id team_id application_id source issuer not_before not_after domains fingerprint_sha256 "
        "issued_at error_stage error_reason error_at expiring_days_left expiring_reason expiring_at updated_at",
    ),
)
