"""`items serve` trusting an independent Cognito-compatible issuer (moto's
Cognito emulation), configured the way a real user pool is: issuer, a JWKS URL
of its own, and the app client id.

moto's access tokens carry Cognito's `aws.cognito.signin.user.admin` scope
(what the admin password flow gives in AWS too), not `items/read`: such a token
is authenticated (signature, issuer, token use, client all check out) but not
authorized, so the gateway answers 403, exactly as API Gateway would. Anything
that fails authentication gets 401.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest

from conftest import ITEMS, free_port

PASSWORD = "Str0ng!Passw0rd-for-tests"


def wait_for_port(port, process):
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "process did not start"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def pool():
    port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, moto)
        endpoint = f"http://127.0.0.1:{port}"
        idp = boto3.client("cognito-idp", endpoint_url=endpoint, region_name="eu-west-1",
                           aws_access_key_id="local", aws_secret_access_key="local")
        pool_id = idp.create_user_pool(PoolName="items")["UserPool"]["Id"]
        flows = ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
        client = idp.create_user_pool_client(UserPoolId=pool_id, ClientName="web", ExplicitAuthFlows=flows)
        other = idp.create_user_pool_client(UserPoolId=pool_id, ClientName="other", ExplicitAuthFlows=flows)
        idp.admin_create_user(UserPoolId=pool_id, Username="alice")
        idp.admin_set_user_password(UserPoolId=pool_id, Username="alice", Password=PASSWORD, Permanent=True)

        def tokens(client_id):
            return idp.admin_initiate_auth(
                UserPoolId=pool_id, ClientId=client_id, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": "alice", "PASSWORD": PASSWORD},
            )["AuthenticationResult"]

        yield {
            "issuer": f"https://cognito-idp.eu-west-1.amazonaws.com/{pool_id}",
            "jwks_url": f"{endpoint}/{pool_id}/.well-known/jwks.json",
            "client_id": client["UserPoolClient"]["ClientId"],
            "tokens": tokens(client["UserPoolClient"]["ClientId"]),
            "other_client_tokens": tokens(other["UserPoolClient"]["ClientId"]),
        }
    finally:
        moto.terminate()
        moto.wait(timeout=10)


@pytest.fixture(scope="module")
def api(pool):
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        process = subprocess.Popen(
            [str(ITEMS), "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir,
             "--issuer", pool["issuer"], "--jwks-url", pool["jwks_url"], "--client-ids", pool["client_id"]],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"},
        )
        try:
            wait_for_port(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def get_items(api, authorization):
    request = urllib.request.Request(api + "/items", headers={"Authorization": authorization})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_an_access_token_of_the_pool_is_authenticated(api, pool):
    status, body = get_items(api, "Bearer " + pool["tokens"]["AccessToken"])
    assert (status, body) == (403, b'{"message":"Forbidden"}'), "authenticated, but without items/read"


def test_the_pools_id_token_is_rejected(api, pool):
    assert get_items(api, "Bearer " + pool["tokens"]["IdToken"]) == (401, b'{"message":"Unauthorized"}')


def test_another_app_clients_token_is_rejected(api, pool):
    assert get_items(api, "Bearer " + pool["other_client_tokens"]["AccessToken"])[0] == 401


def test_a_tampered_token_is_rejected(api, pool):
    header, payload, signature = pool["tokens"]["AccessToken"].split(".")
    forged = ".".join([header, payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB"), signature])
    assert get_items(api, "Bearer " + forged)[0] == 401


def test_the_development_issuer_is_not_trusted_in_this_mode(api):
    dev_token = subprocess.run(
        [str(ITEMS), "token", "--data-dir", tempfile.mkdtemp()], check=True, capture_output=True, text=True,
    ).stdout.strip()
    assert get_items(api, "Bearer " + dev_token)[0] == 401
