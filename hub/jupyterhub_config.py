# JupyterHub for payops team mode: `make hub` runs `jupyterhub -f hub/jupyterhub_config.py`.
#
# Everything listens on 127.0.0.1. Reviewers log in through the hub's form, land in the refund
# review app (Voila), and every decision goes to `payops serve`, the hub-managed service that
# alone holds the Stripe key and the audit key and takes the user's name from the hub.
#
# Settings come from the environment `make hub` sets (all optional):
#   PAYOPS_HUB_DIR        runtime folder: hub database, cookie secret, pid files, audit key,
#                         demo passwords, users' homes (default .hub); delete it to start over
#   PAYOPS_HUB_PORT       the public port (8000); PAYOPS_HUB_API_PORT (8081), PAYOPS_HUB_PROXY_API_PORT
#                         (8001) and PAYOPS_SERVICE_PORT (8791) are internal
#   PAYOPS_DB             the database payops serve writes (the review app reads it between changes)
#   PAYOPS_SNAPSHOT       the analysts' copy payops serve publishes (default: beside PAYOPS_DB,
#                         <name>.snapshot.duckdb), every PAYOPS_SNAPSHOT_EVERY minutes (15)
#   PAYOPS_CONFIG         the roles file (default hub/payops.toml: viewer vic, reviewers ana and
#                         ben, senior carla, processor ben)
#   PAYOPS_HUB_PASSWORDS  the demo's "user:password" lines (default <hub dir>/passwords.txt)
#   STRIPE_API_KEY, STRIPE_API_BASE, STRIPE_WEBHOOK_SECRET: passed to payops serve only
#
# A real team swaps the demo authenticator for its own (see the README, "Team mode"):
#   c.JupyterHub.authenticator_class = "pam"                 # OS accounts
#   c.JupyterHub.authenticator_class = "github"              # oauthenticator: OAuth
#   c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
# and a spawner that runs each user as their own OS user or container (LocalProcessSpawner,
# SystemdSpawner, DockerSpawner), with the database and the audit key readable by the
# service's user only.

import hmac
import os
import sys
import tomllib
from pathlib import Path

from jupyterhub.auth import Authenticator

c = get_config()  # noqa: F821  # provided by JupyterHub when it loads this file

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_BIN = Path(sys.executable).parent
HUB_DIR = Path(os.environ.get("PAYOPS_HUB_DIR", REPO / ".hub")).resolve()
HUB_DIR.mkdir(parents=True, exist_ok=True)
PORT = int(os.environ.get("PAYOPS_HUB_PORT", "8000"))
HUB_API_PORT = int(os.environ.get("PAYOPS_HUB_API_PORT", "8081"))
PROXY_API_PORT = int(os.environ.get("PAYOPS_HUB_PROXY_API_PORT", "8001"))
SERVICE_PORT = int(os.environ.get("PAYOPS_SERVICE_PORT", "8791"))
DB = str(Path(os.environ.get("PAYOPS_DB", REPO / "data" / "payops.duckdb")).resolve())
SNAPSHOT = str(Path(os.environ.get("PAYOPS_SNAPSHOT", Path(DB).with_suffix(".snapshot.duckdb"))).resolve())
SNAPSHOT_EVERY = os.environ.get("PAYOPS_SNAPSHOT_EVERY", "15")
CONFIG = str(Path(os.environ.get("PAYOPS_CONFIG", HERE / "payops.toml")).resolve())
PASSWORDS = Path(os.environ.get("PAYOPS_HUB_PASSWORDS", HUB_DIR / "passwords.txt"))
AUDIT_KEY_FILE = HUB_DIR / "audit.key"
SERVICE = "payops"
SCOPE = f"access:services!service={SERVICE}"


def _passwords() -> dict[str, str]:
    users = {}
    for line in PASSWORDS.read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            name, _, password = line.partition(":")
            users[name.strip()] = password.strip()
    return users


class DemoPasswordAuthenticator(Authenticator):
    """The demo's logins: one password per user from PAYOPS_HUB_PASSWORDS (never for production)."""

    async def authenticate(self, handler, data):
        users = _passwords()
        name = (data.get("username") or "").strip()
        given = (data.get("password") or "").encode()
        expected = users.get(name, "").encode()
        # compare_digest even for unknown users, so timing does not say who exists
        if hmac.compare_digest(given, expected) and name in users and given:
            return name
        return None


def _role_users() -> set[str]:
    roles = tomllib.loads(Path(CONFIG).read_text()).get("roles", {})
    return {u for members in roles.values() for u in members if not u.startswith("group:")}


# --- the hub, its proxy and its runtime files: 127.0.0.1, all in HUB_DIR --------------------
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = PORT
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = HUB_API_PORT
c.JupyterHub.db_url = f"sqlite:///{HUB_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(HUB_DIR / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(HUB_DIR / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every server it started
c.ConfigurableHTTPProxy.command = [str(HERE / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
c.ConfigurableHTTPProxy.pid_file = str(HUB_DIR / "proxy.pid")
c.ConfigurableHTTPProxy.should_start = True

# --- who may log in ---------------------------------------------------------------------------
c.JupyterHub.authenticator_class = DemoPasswordAuthenticator
c.Authenticator.allowed_users = set(_passwords()) | _role_users()

# --- each user's server: the refund review app in Voila, with their own hub token -------------
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = str(HUB_DIR / "home" / "{username}")
c.Spawner.cmd = [str(VENV_BIN / "jupyterhub-singleuser")]
c.Spawner.args = ["--VoilaConfiguration.strip_sources=True"] + (["--allow-root"] if os.geteuid() == 0 else [])
c.Spawner.notebook_dir = str(REPO / "notebooks")
c.Spawner.default_url = "/voila/render/refund_review.ipynb"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# The server's (and so the kernel's) JUPYTERHUB_API_TOKEN may call payops serve.
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", SCOPE]
# Only what a reader needs: no Stripe key, no audit key (JupyterHub passes no other variable).
c.Spawner.environment = {
    "PAYOPS_DB": DB,
    "PAYOPS_CONFIG": CONFIG,
    "PAYOPS_SERVICE_URL": f"http://127.0.0.1:{PORT}/services/{SERVICE}/",
    "PAYOPS_DB_TIMEOUT": "30",
    # long analyses read this copy: payops.query(sql, db=os.environ["PAYOPS_SNAPSHOT"])
    "PAYOPS_SNAPSHOT": SNAPSHOT,
}

# --- payops serve: the one writer ------------------------------------------------------------
_service_env = {
    "PATH": os.environ.get("PATH", ""),
    "PAYOPS_DB": DB,
    "PAYOPS_CONFIG": CONFIG,
    "PAYOPS_AUDIT_KEY_FILE": str(AUDIT_KEY_FILE),
    "PAYOPS_DB_TIMEOUT": "30",
}
for _name in ("STRIPE_API_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET", "PAYOPS_TIMEZONE"):
    if os.environ.get(_name):
        _service_env[_name] = os.environ[_name]
c.JupyterHub.services = [{
    "name": SERVICE,
    "url": f"http://127.0.0.1:{SERVICE_PORT}",
    "command": [str(VENV_BIN / "payops"), "serve", "--snapshot", SNAPSHOT, "--snapshot-every", SNAPSHOT_EVERY],
    "environment": _service_env,
    "oauth_no_confirm": True,
    "display": False,
}]
c.JupyterHub.load_roles = [
    {"name": "payops-user", "description": "May call payops serve (it decides what each user may do)",
     "scopes": [SCOPE], "users": sorted(c.Authenticator.allowed_users)},
]
