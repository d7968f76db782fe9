"""Reaching a deployed stack: its Function URL, SigV4-signed with the caller's AWS credentials.

The URL is given (``--url``, ``BLACKSMITH_RECONCILER_URL``) or read from the CloudFormation
stack's ``ApiUrl`` output (``--stack``, ``BLACKSMITH_RECONCILER_STACK``). Region, profile and
endpoint come the usual AWS way (``--region``/``AWS_REGION``, ``--profile``/``AWS_PROFILE``,
``--endpoint-url``/``AWS_ENDPOINT_URL``), so a LocalStack or ``mockstack serve`` is reached
like AWS.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import boto3
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

DEFAULT_REGION = "us-east-1"
TIMEOUT_S = 60.0


class CliError(Exception):
    """A one-line failure with the exit code it means (2 usage/input, 3 cannot reach the stack)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class Unreachable(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 3)


@dataclass
class Answer:
    status: int
    body: Any  # parsed JSON, or text

    @property
    def error(self) -> str:
        if isinstance(self.body, dict) and self.body.get("error"):
            return str(self.body["error"])
        return str(self.body)[:300]


def aws_session(profile: str | None, region: str | None) -> Any:
    """A boto3 session; the region from --region, AWS_REGION, AWS_DEFAULT_REGION or the profile."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    try:
        session = boto3.Session(profile_name=profile or None, region_name=region)
    except ProfileNotFound:
        raise CliError(f"--profile {profile}: no such AWS profile (see ~/.aws/config)") from None
    if not session.region_name:
        raise CliError("no AWS region: pass --region, or set AWS_REGION (or a region in the profile)")
    return session


class StackClient:
    """Signed requests to the stack's API (service ``lambda``, as Function URLs with AWS_IAM expect)."""

    def __init__(self, url: str, session: Any, *, timeout_s: float = TIMEOUT_S) -> None:
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--url {url[:80]}: accepted is the Function URL, http(s)://...")
        self.url = url.rstrip("/")
        self.session = session
        self.region = session.region_name or DEFAULT_REGION
        self.timeout_s = timeout_s
        self.http = requests.Session()

    @classmethod
    def connect(cls, *, url: str | None, stack: str | None, profile: str | None, region: str | None,
                endpoint_url: str | None) -> StackClient:
        session = aws_session(profile, region)
        url = url or os.environ.get("BLACKSMITH_RECONCILER_URL")
        if url:
            return cls(url, session)
        stack = stack or os.environ.get("BLACKSMITH_RECONCILER_STACK")
        if not stack:
            raise CliError("no stack given: pass --stack NAME (or BLACKSMITH_RECONCILER_STACK) or --url FUNCTION_URL")
        return cls(api_url_of(session, stack, endpoint_url), session)

    def request(self, method: str, path: str, body: Any = None, *, accept: tuple[int, ...] = ()) -> Answer:
        """One signed request; 403 and 5xx (except the ``accept``ed ones) raise :class:`Unreachable`."""
        data = b"" if body is None else json.dumps(body).encode()
        try:
            credentials = self.session.get_credentials()
        except BotoCoreError as exc:
            raise Unreachable(f"AWS credentials could not be loaded: {type(exc).__name__}") from None
        if credentials is None:
            raise Unreachable("no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                              "(the Function URL is AWS_IAM)")
        headers = {"content-type": "application/json"} if data else {}
        signed = AWSRequest(method=method, url=self.url + path, data=data, headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), "lambda", self.region).add_auth(signed)
        try:
            response = self.http.request(method, signed.url, headers=dict(signed.headers.items()), data=data,
                                         timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach the stack at {self.url}: {type(exc).__name__}") from None
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = response.text
        answer = Answer(response.status_code, parsed)
        if response.status_code == 403:
            raise Unreachable(f"{self.url} refused the request (403): the credentials need "
                              "lambda:InvokeFunctionUrl on the API function")
        if response.status_code >= 500 and response.status_code not in accept:
            raise Unreachable(f"the stack's API failed ({response.status_code}): {answer.error}")
        return answer

    def get(self, path: str) -> Any:
        answer = self.request("GET", path)
        if answer.status == 404:
            raise CliError(answer.error, 2)
        if answer.status >= 400:
            raise CliError(f"{path}: {answer.error}", 2)
        return answer.body


def api_url_of(session: Any, stack: str, endpoint_url: str | None) -> str:
    """The ``ApiUrl`` output of CloudFormation stack ``stack``."""
    try:
        cfn = session.client("cloudformation", endpoint_url=endpoint_url or None)
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except NoCredentialsError:
        raise Unreachable("no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from None
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        if "does not exist" in message:
            where = session.region_name or "the region"
            raise Unreachable(f"--stack {stack}: no such CloudFormation stack in {where}") from None
        raise Unreachable(f"--stack {stack}: CloudFormation refused: {exc.response.get('Error', {}).get('Code')}") \
            from None
    except BotoCoreError as exc:
        raise Unreachable(f"cannot reach CloudFormation for stack {stack}: {type(exc).__name__}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (stacks[0].get("Outputs") or [])} if stacks else {}
    if not outputs.get("ApiUrl"):
        raise Unreachable(f"--stack {stack}: the stack has no ApiUrl output (not a reconciler stack?)")
    return outputs["ApiUrl"]
