"""The whole system on one machine: what `make local` starts and stops.

A moto server plays S3 and API Gateway (and CloudFormation, for the stack's outputs), and
runs the state machines (devstack.moto_server); the functions of the built template run
under the Lambda RIE; a local API Gateway, an S3 notifier and a Lambda Invoke endpoint
(which the state machines' tasks call) invoke them. Everything the functions see comes
from the template, its parameters and events/env.json: the stack holds no business logic
of its own.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack import runtime
from devstack.gateway import INTEGRATION_TIMEOUT, LocalGateway
from devstack.lambda_api import LocalLambdaApi
from devstack.moto_server import LAMBDA_ENDPOINT_VARIABLE
from devstack.notifications import POLL_CONFIG, S3Notifier
from devstack.pool import FunctionPool
from devstack.rie import FunctionSpec, Invocation, free_port
from devstack.template import ApiSpec, FunctionDef, StateMachineDef, Template, TemplateError
from devstack.usage import LOOKUP_CONFIG, UsagePlans

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_s3 import S3Client

ROOT = runtime.ROOT
LOCAL_CREDENTIALS = {
    # moto accepts any credentials; these keep real ones out of the local functions.
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}
# What the functions' service endpoints become locally (when the template declares them).
LOCAL_ENDPOINTS = frozenset(
    {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL_SFN"}
)


class StackError(RuntimeError):
    """The local stack cannot start; the message says why and what to do."""


@dataclass
class StackConfig:
    root: Path = ROOT
    host: str = "127.0.0.1"  # the API's address
    api_port: int = 3000
    # moto has no auth: whoever reaches it reads the API keys and writes the model bucket.
    s3_host: str = "127.0.0.1"
    s3_port: int = 4567
    stack_name: str = "sklearn-serverless"
    region: str = "us-east-1"
    python_version: str = field(default_factory=runtime.local_python_version)
    build: bool = True
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    env_file: Path | None = ROOT / "events" / "env.json"
    # Applied after env_file, per function logical id.
    env_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    max_environments: int = 4
    integration_timeout: float = INTEGRATION_TIMEOUT
    notify_interval: float = 0.5
    retry_delay: float = 1.0
    key_cache_seconds: float = 1.0
    seed_model: bool = True
    # A signing key made in moto's KMS: the functions require signatures by it (the
    # template's ModelSigningKeyArn) and the seed model is signed with it.
    require_signatures: bool = False
    state_dir: Path | None = None
    verbose: bool = False

    @property
    def state(self) -> Path:
        return self.state_dir or self.root / ".local"


def declared_overrides(declared: Mapping[str, str], overrides: Mapping[str, Any]) -> dict[str, str]:
    """Like `sam local invoke --env-vars`: only variables the template declares change."""
    return {name: str(value) for name, value in overrides.items() if name in declared}


def function_environment(
    function: FunctionDef,
    *,
    env_file: Mapping[str, Mapping[str, Any]],
    overrides: Mapping[str, str],
    s3_endpoint: str | None,
    region: str,
) -> dict[str, str]:
    """Template variables, then env.json's (declared only), then the stack's own."""
    environment = dict(function.environment)
    for scope in ("Parameters", function.logical_id):
        environment.update(declared_overrides(function.environment, env_file.get(scope, {})))
    environment.update(overrides)
    if s3_endpoint is not None:
        for name in environment:
            if name in LOCAL_ENDPOINTS:
                environment[name] = s3_endpoint
    environment.update(LOCAL_CREDENTIALS)
    environment["AWS_REGION"] = environment["AWS_DEFAULT_REGION"] = region
    return environment


def lambda_spec(
    function: FunctionDef, environment: Mapping[str, str], runtime_dir: Path
) -> FunctionSpec:
    """How the RIE runs FUNCTION as Lambda would: built code and layers only, isolated."""
    return FunctionSpec(
        name=function.logical_id,
        handler=function.handler,
        code_dir=function.code_dir,
        layer_dirs=function.layer_dirs,
        environment=environment,
        memory_mb=function.memory_mb,
        timeout_s=function.timeout_s,
        python=runtime.base_python(),
        runtime_dirs=[runtime_dir],
        isolated=True,
        function_name=function.name,
    )


def sandbox_base_env() -> dict[str, str]:
    """What a function inherits from this machine: nothing but PATH and a UTF-8 locale."""
    return {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}


def load_env_file(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise StackError(f"{path}: expected {{FunctionLogicalId: {{NAME: value}}}}")
    return document


def snapshot(build_dir: Path, target: Path) -> Path:
    """A private copy of the build, so a `make build` elsewhere (`make test` in another
    terminal) cannot pull the code from under running functions. Hard links: instant."""
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(build_dir, target, symlinks=True, copy_function=os.link)
    except OSError:  # another filesystem: copy instead
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(build_dir, target, symlinks=True)
    return target


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on HOST:PORT now. SO_REUSEADDR as the servers set it:
    the connections of a stack just stopped linger in TIME_WAIT, and do not stop a restart."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(s3_host: str) -> str | None:
    """What moto on a non-loopback address gives away (None on loopback)."""
    if is_loopback(s3_host):
        return None
    return (
        f"WARNING: moto (S3, API Gateway) listens on {s3_host}: it has no authentication, so "
        "anyone who reaches it reads the API key values and can write the model bucket "
        "(a model is code the functions run). Keep it on 127.0.0.1 unless you must."
    )


def private_dir(path: Path) -> Path:
    """PATH as a directory only its owner can enter (0700), made if needed. A shared
    directory (sticky, as /tmp) given as the state directory keeps its mode."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.stat().st_mode & stat.S_ISVTX:
        path.chmod(0o700)
    return path


def private_open(path: Path) -> BinaryIO:
    """PATH opened for writing (binary), readable and writable by its owner only (0600),
    also when it existed before with a wider mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path, text: str) -> None:
    with private_open(path) as file:
        file.write(text.encode())


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"moto server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.05)
    raise StackError(f"moto server did not listen on {host}:{port} within {timeout:.0f} s")


class LocalStack:
    def __init__(
        self, config: StackConfig, *, log: Callable[[str, str], None] | None = None
    ) -> None:
        self.config = config
        self._log = log or (lambda source, line: None)
        self._moto: subprocess.Popen[bytes] | None = None
        self.signing_key: str | None = None  # the KMS key's ARN, with require_signatures
        self.template: Template | None = None
        self.functions: dict[str, FunctionDef] = {}
        self.state_machine_defs: list[StateMachineDef] = []
        self.state_machines: dict[str, str] = {}  # logical id: ARN, once made in moto
        self.lambda_api: LocalLambdaApi | None = None
        self.pools: dict[str, FunctionPool] = {}
        self.gateways: list[LocalGateway] = []
        self.notifier: S3Notifier | None = None
        self.api_key: str = ""
        self.usage_plan_id: str = ""
        self.buckets: dict[str, str] = {}
        self.timings: dict[str, float] = {}

    # -- endpoints -------------------------------------------------------------------------
    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.config.s3_host}:{self.config.s3_port}"

    @property
    def api_url(self) -> str:
        return self.gateways[0].url if self.gateways else ""

    def client(self, service: str, config: Config | None = None) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.s3_endpoint,
            region_name=self.config.region,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=config,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _step(self, name: str, started: float) -> None:
        self.timings[name] = time.perf_counter() - started

    def _start(self) -> None:
        config = self.config
        self._check_ports()
        private_dir(config.state)
        started = time.perf_counter()
        build_dir = runtime.build_dir(config.python_version, config.root)
        if config.build:
            self._log(
                "local", f"building the functions and layers for Python {config.python_version}"
            )
            try:
                build_dir = runtime.build(config.python_version, config.root, quiet=True)
            except runtime.BuildError as exc:
                raise StackError(str(exc)) from None
            self._log("local", f"built in {time.perf_counter() - started:.1f} s ({build_dir})")
        if not (build_dir / "template.yaml").exists():
            raise StackError(f"{build_dir} has no built template; run make build")
        # The built template's paths out of the build (DefinitionUri) start at the original.
        source_dir = build_dir
        build_dir = snapshot(build_dir, config.state / "build")
        self._step("build", started)
        template, apis = self._read_template(build_dir, source_dir)

        # Before moto: the state machines' tasks call it.
        self._start_lambda_api(template)
        started = time.perf_counter()
        self._start_moto()
        self._step("moto", started)
        if config.require_signatures:
            # The key exists only once moto runs: the template is read again with it.
            self.signing_key = self._create_signing_key()
            config.parameter_overrides["ModelSigningKeyArn"] = self.signing_key
            template, apis = self._read_template(build_dir, source_dir)

        started = time.perf_counter()
        self._create_buckets()
        self._create_state_machines()
        api_ids = self._create_apis(apis)
        self._step("provision", started)

        env_file = load_env_file(config.env_file)
        runtime_dir = runtime.runtime_dir(config.python_version, config.root)
        for logical_id, function in self.functions.items():
            environment = function_environment(
                function,
                env_file=env_file,
                overrides=config.env_overrides.get(logical_id, {}),
                s3_endpoint=self.s3_endpoint,
                region=config.region,
            )
            self.pools[logical_id] = FunctionPool(
                lambda_spec(function, environment, runtime_dir),
                max_environments=config.max_environments,
                on_log=self._function_log,
                base_env=sandbox_base_env(),
            )

        if config.seed_model:
            started = time.perf_counter()
            self._seed_model()
            self._step("model", started)

        for index, (api, api_id) in enumerate(zip(apis, api_ids, strict=True)):
            gateway = LocalGateway(
                api,
                api_id=api_id,
                account_id=template.account,
                keys=UsagePlans(
                    self.client("apigateway", LOOKUP_CONFIG),
                    cache_seconds=config.key_cache_seconds,
                    on_log=functools.partial(self._log, "api-keys"),
                ),
                invoke=self.invoke,
                host=config.host,
                port=config.api_port + index if config.api_port else 0,
                integration_timeout=config.integration_timeout,
                on_access=functools.partial(self._log, api.logical_id),
            )
            gateway.start()
            self.gateways.append(gateway)

        triggers = template.s3_triggers()
        if triggers:
            self.notifier = S3Notifier(
                self.client("s3"),
                triggers,
                self.invoke,
                region=config.region,
                interval=config.notify_interval,
                retry_attempts={
                    t.function: self.functions[t.function].retry_attempts for t in triggers
                },
                retry_delay=config.retry_delay,
                on_log=lambda line: self._log("s3-events", line),
                sqs=self.client("sqs", POLL_CONFIG),
                events=self.client("events", POLL_CONFIG),
            )
            self.notifier.start()
        self._register_stack_outputs()
        self._write_state()

    def _read_template(self, build_dir: Path, source_dir: Path) -> tuple[Template, list[ApiSpec]]:
        """The built template with the stack's parameters, and its APIs; functions and
        state machines kept."""
        config = self.config
        try:
            template = Template(
                build_dir / "template.yaml",
                stack_name=config.stack_name,
                region=config.region,
                parameter_overrides=config.parameter_overrides,
                source_dir=source_dir,
            )
            self.functions = template.functions()
            self.state_machine_defs = template.state_machines()
            self.template = template
            return template, template.apis()
        except TemplateError as exc:
            raise StackError(str(exc)) from None

    def _create_signing_key(self) -> str:
        """An asymmetric KMS key in moto that model manifests are signed with."""
        created = self.client("kms").create_key(
            KeyUsage="SIGN_VERIFY",
            KeySpec="ECC_NIST_P256",
            Description="make local: signs model manifests",
        )
        arn: str = created["KeyMetadata"]["Arn"]
        self._log("local", f"model signatures required: KMS key {arn}")
        return arn

    def _check_ports(self) -> None:
        config = self.config
        for host, port, what in (
            (config.s3_host, config.s3_port, "S3 (moto)"),
            (config.host, config.api_port, "the API"),
        ):
            if port and not port_is_free(host, port):
                raise StackError(
                    f"port {port} on {host} ({what}) is in use: is another `make local` "
                    "running? Stop it, or choose other ports (API_PORT=..., S3_PORT=...)."
                )

    def _start_lambda_api(self, template: Template) -> None:
        """Lambda's Invoke for the functions, on loopback: what the state machines call."""
        self.lambda_api = LocalLambdaApi(
            {function.name: logical_id for logical_id, function in self.functions.items()},
            self.invoke,
            region=template.region,
            account=template.account,
            on_log=functools.partial(self._log, "lambda-api"),
        )
        self.lambda_api.start()

    def _start_moto(self) -> None:
        config = self.config
        assert self.lambda_api is not None
        if not config.s3_port:
            config.s3_port = free_port(config.s3_host)
        warning = exposure_warning(config.s3_host)
        if warning:
            self._log("local", warning)
        environment = {
            **os.environ,
            LAMBDA_ENDPOINT_VARIABLE: self.lambda_api.url,
            "MOTO_PORT": str(config.s3_port),  # where moto's internals reach moto itself
        }
        with private_open(private_dir(config.state) / "moto.log") as log:
            self._moto = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devstack.moto_server",
                    "-H",
                    config.s3_host,
                    "-p",
                    str(config.s3_port),
                ],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for_port(config.s3_host, config.s3_port, 30, self._moto)

    def _create_buckets(self) -> None:
        assert self.template is not None
        s3: S3Client = self.client("s3")
        for bucket in self.template.buckets():
            s3.create_bucket(Bucket=bucket.name)
            if bucket.versioned:
                s3.put_bucket_versioning(
                    Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
                )
            self.buckets[bucket.logical_id] = bucket.name

    def _create_state_machines(self) -> None:
        """Each state machine in moto's Step Functions, under the ARN the functions were
        given (the template derives it from the name, as Step Functions does)."""
        assert self.template is not None
        sfn = self.client("stepfunctions")
        role = f"arn:aws:iam::{self.template.account}:role/{self.config.stack_name}-local"
        for machine in self.state_machine_defs:
            try:
                arn: str = sfn.create_state_machine(
                    name=machine.name,
                    definition=json.dumps(machine.definition),
                    roleArn=role,
                    type=machine.type,
                )["stateMachineArn"]
            except ClientError as exc:
                raise StackError(
                    f"{machine.logical_id}: Step Functions refuses it: {exc}"
                ) from None
            if arn != machine.arn:
                raise StackError(
                    f"{machine.logical_id}: Step Functions made {arn}, not the {machine.arn} "
                    "the functions were given"
                )
            self.state_machines[machine.logical_id] = arn

    def _stable_key(self) -> str:
        """The stack's key survives restarts, so scripts that use it keep working."""
        path = private_dir(self.config.state) / "api-key"
        if path.exists():
            path.chmod(0o600)  # kept from a version that wrote it world-readable
            return path.read_text().strip()
        value = secrets.token_urlsafe(30)
        write_private(path, value + "\n")
        return value

    def _create_apis(self, apis: list[ApiSpec]) -> list[str]:
        assert self.template is not None
        client: APIGatewayClient = self.client("apigateway")
        created = []
        for api in apis:
            api_id = client.create_rest_api(name=api.name)["id"]
            self.template.set_physical(api.logical_id, api_id)
            if api.usage_plan is not None:
                plan = api.usage_plan
                arguments: dict[str, Any] = {
                    "name": f"{api.name}-usage-plan",
                    "description": plan.description,
                    "apiStages": [{"apiId": api_id, "stage": api.stage}],
                }
                if plan.rate_limit is not None or plan.burst_limit is not None:
                    arguments["throttle"] = {
                        k: v
                        for k, v in (
                            ("rateLimit", plan.rate_limit),
                            ("burstLimit", plan.burst_limit),
                        )
                        if v is not None
                    }
                if plan.quota_limit is not None:
                    arguments["quota"] = {"limit": plan.quota_limit, "period": plan.quota_period}
                plan_id = client.create_usage_plan(**arguments)["id"]
                # SAM's PER_API plan comes with one key, as on AWS.
                key = client.create_api_key(
                    name=f"{api.name}-key",
                    enabled=True,
                    value=self._stable_key(),
                    stageKeys=[{"restApiId": api_id, "stageName": api.stage}],
                )
                client.create_usage_plan_key(
                    usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY"
                )
                self.template.set_physical(f"{api.logical_id}UsagePlan", plan_id)
                self.template.set_physical(f"{api.logical_id}ApiKey", key["id"])
                if not self.api_key:
                    self.api_key, self.usage_plan_id = key["value"], plan_id
            created.append(api_id)
        return created

    def _register_stack_outputs(self) -> None:
        """A CloudFormation stack with the template's outputs, so tools that look a stack
        up (`model-store keys --stack`) find the local one as they find the real one."""
        assert self.template is not None
        outputs = self.template.outputs()
        if self.gateways:
            outputs["ApiUrl"] = self.api_url
        body = {
            "Resources": {"LocalStack": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
        self.client("cloudformation").create_stack(
            StackName=self.config.stack_name, TemplateBody=json.dumps(body)
        )

    def _seed_model(self) -> None:
        from devstack.seed import seed_registry

        environment = self.model_environment()
        if environment is None:
            return
        signer = None
        if self.signing_key is not None:
            from model_store.signing import KmsSigner

            signer = KmsSigner(self.signing_key, self.client("kms"))
        seed_registry(
            s3=self.client("s3"),
            environment=environment,
            cache_dir=private_dir(self.config.state / "seed"),
            log=lambda line: self._log("local", line),
            signer=signer,
        )

    def model_environment(self) -> Mapping[str, str] | None:
        """The environment of the first function that serves a model from the registry."""
        return next(
            (
                p.spec.environment
                for p in self.pools.values()
                if p.spec.environment.get("MODEL_BUCKET")
            ),
            None,
        )

    def _write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "api_url": self.api_url,
            "api_key": self.api_key,
            "s3_endpoint": self.s3_endpoint,
            "buckets": self.buckets,
            "state_machines": self.state_machines,
            "stack_name": self.config.stack_name,
        }
        write_private(
            private_dir(self.config.state) / "stack.json", json.dumps(state, indent=2) + "\n"
        )

    def invoke(self, function: str, event: dict[str, Any]) -> Invocation:
        return self.pools[function].invoke(event)

    def _function_log(self, label: str, line: str) -> None:
        # The emulator's own INFO chatter ("(rapid) ...") is not what CloudWatch shows.
        if not self.config.verbose and "(rapid)" in line and "[INFO]" in line:
            return
        self._log(label, line)

    def stop(self) -> None:
        if self.notifier is not None:
            self.notifier.stop()
        for gateway in self.gateways:
            gateway.stop()
        if self.lambda_api is not None:
            self.lambda_api.stop()
        # Each function's environments end side by side with the others'.
        stopping = [threading.Thread(target=pool.stop) for pool in self.pools.values()]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        if self._moto is not None and self._moto.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._moto.pid, 15)
            try:
                self._moto.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self._moto.pid, 9)
                self._moto.wait(timeout=5)
        state = self.config.state / "stack.json"
        with contextlib.suppress(OSError):
            if json.loads(state.read_text()).get("pid") == os.getpid():
                state.unlink()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
