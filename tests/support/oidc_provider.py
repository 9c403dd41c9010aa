"""A real OpenID Connect provider for the tests, on loopback: Authlib's server side (Flask integration)
with the authorization code grant, OpenID Connect (`OpenIDCode`, nonce required) and PKCE
(`CodeChallenge`, S256 required), an RSA key published as JWKS, and a discovery document.

The authorization endpoint signs the configured test user in without a form (auto-approval). A control
endpoint (`POST /_control`, JSON) sets that user (`sub`, `groups`) and makes the next ID tokens wrong on
purpose (`nonce`, `aud`, `exp_offset`, `other_key`) so the tests can check that carepath refuses them.

    python -m tests.support.oidc_provider --port P --issuer http://127.0.0.1:P --client-id C
        --client-secret S --redirect-uri http://127.0.0.1:Q/login/callback
"""

from __future__ import annotations

import argparse
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uri: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in ("openid", "profile", "email"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post") if endpoint == "token" else True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class User:
    sub: str = "coordinator-1"
    groups: list[str] = field(default_factory=lambda: ["carepath-coordinators"])

    def get_user_id(self) -> str:
        return self.sub


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class State:
    def __init__(self, issuer: str, client: Client) -> None:
        self.issuer = issuer
        self.client = client
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key-1", "use": "sig", "alg": "RS256"})
        self.stranger = RSAKey.generate_key(2048, parameters={"kid": "test-key-1", "use": "sig", "alg": "RS256"})
        self.user = User()
        self.codes: dict[str, Code] = {}
        self.tamper: dict[str, Any] = {}
        self.tokens_issued = 0


def create_app(issuer: str, client: Client) -> Flask:
    app = Flask(__name__)
    state = State(issuer, client)

    class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

        def save_authorization_code(self, code: str, req: Any) -> None:
            data = req.payload.data
            state.codes[code] = Code(
                code=code,
                client_id=req.client.client_id,
                redirect_uri=req.payload.redirect_uri,
                scope=req.scope,
                user=req.user,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                auth_time=int(time.time()),
            )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = state.codes.get(code)
            return found if found is not None and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            state.codes.pop(authorization_code.code, None)  # a code is good once: a replay is invalid_grant

        def authenticate_user(self, authorization_code: Code) -> User:
            return authorization_code.user

    class TestOpenIDCode(OpenIDCode):
        def exists_nonce(self, nonce: str, req: Any) -> bool:
            return any(c.nonce == nonce for c in state.codes.values() if c.code != getattr(req, "code", None))

        def resolve_client_private_key(self, client: Client) -> Any:
            return state.stranger if state.tamper.get("other_key") else state.key

        def get_client_algorithm(self, client: Client) -> str:
            return "RS256"

        def get_encode_header(self, client: Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": "test-key-1"}

        def get_client_claims(self, client: Client) -> dict[str, Any]:
            now = int(time.time())
            return {
                "iss": state.issuer,
                "aud": [state.tamper.get("aud", client.client_id)],
                "iat": now + int(state.tamper.get("exp_offset", 0)) - 1 if "exp_offset" in state.tamper else now,
                "exp": now + int(state.tamper.get("exp_offset", 600)),
            }

        def get_authorization_code_claims(self, authorization_code: Code) -> dict[str, Any]:
            claims = super().get_authorization_code_claims(authorization_code)
            if "nonce" in state.tamper:
                claims["nonce"] = state.tamper["nonce"]
            return claims

        def generate_user_info(self, user: User, scope: str) -> UserInfo:
            state.tokens_issued += 1
            return UserInfo(sub=user.sub, groups=list(user.groups))

    def query_client(client_id: str) -> Client | None:
        return state.client if client_id == state.client.client_id else None

    server = AuthorizationServer(app, query_client=query_client, save_token=lambda token, req: None)
    server.register_grant(AuthorizationCodeGrant, [TestOpenIDCode(require_nonce=True), CodeChallenge(required=True)])

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Any:
        return jsonify(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": ["openid", "profile", "email"],
            }
        )

    @app.get("/jwks")
    def jwks() -> Any:
        return jsonify(KeySet([state.key]).as_dict(private=False))

    @app.get("/authorize")
    def authorize() -> Any:
        return server.create_authorization_response(grant_user=state.user)  # auto-approval of the test user

    @app.post("/token")
    def token() -> Any:
        return server.create_token_response()

    @app.post("/_control")
    def control() -> Any:
        body = request.get_json(force=True)
        if "user" in body:
            state.user = User(sub=body["user"]["sub"], groups=list(body["user"].get("groups", [])))
        if "tamper" in body:
            state.tamper = dict(body["tamper"])
        return jsonify({"tokens_issued": state.tokens_issued, "codes": len(state.codes)})

    @app.get("/_control")
    def control_state() -> Any:
        return jsonify({"tokens_issued": state.tokens_issued, "codes": len(state.codes)})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", required=True)
    args = parser.parse_args()
    app = create_app(args.issuer, Client(args.client_id, args.client_secret, args.redirect_uri))
    make_server(args.host, args.port, app, threaded=True).serve_forever()


if __name__ == "__main__":
    main()
