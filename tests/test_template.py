"""template.yaml: lint-clean, least privilege that matches config.yaml, `sam validate --lint`, what
`sam build` and sam/Makefile produce, the sample item's custom resource, and events/ and env.json.

The SAM CLI runs from its own virtual environment, .venv-sam (scripts/check-template installs it on
first use: a minute or two, once per machine). Everything else here takes about a minute.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from cfnlint.decode import cfn_yaml

from cache_extension.config import parse_config
from cache_extension.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = ROOT / "template.yaml"
CHECK_TEMPLATE = ROOT / "scripts" / "check-template"
TEMPLATE = cfn_yaml.load(str(TEMPLATE_PATH))
RESOURCES = TEMPLATE["Resources"]
FUNCTIONS = sorted(name for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function")
CONFIG = parse_config((ROOT / "config.yaml").read_text(), path="config.yaml", default_region="REGION", default_ttl=300)

READ_ACTIONS = {"ssm:GetParameters", "ssm:GetParameter", "secretsmanager:GetSecretValue",
                "dynamodb:BatchGetItem", "dynamodb:GetItem"}
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
WRITER_ACTIONS = {"dynamodb:PutItem", "dynamodb:DeleteItem"}  # the sample item's custom resource only
SECRETS_REFERENCE = "/aws/reference/secretsmanager/"
SAM_INSTALL_TIMEOUT = 900  # seconds: creating .venv-sam on a fresh machine
SAM_ENV = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
           "PYTHON": sys.executable}  # sam/Makefile runs scripts/build-layer with $PYTHON


def run(command: list[str], *, timeout: float, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=env or SAM_ENV, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


# ----------------------------------------------------------------------------------------------------
# Reading the template: policies, with intrinsic functions rendered as canonical ARNs
# ----------------------------------------------------------------------------------------------------

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "REGION", "AWS::AccountId": "ACCOUNT", "AWS::StackName": "STACK"}
# The template's parameters as deployed: their defaults, unless a test sets others (with_parameters).
PARAMETERS: dict[str, str] = {}


def parameter(name: str) -> str:
    return PARAMETERS.get(name, TEMPLATE["Parameters"][name].get("Default", ""))


def condition(name: str) -> bool:
    return evaluate(TEMPLATE["Conditions"][name])


def evaluate(value) -> bool | str:
    """A condition's value: Fn::Not, Fn::Equals, Fn::Or, Condition and Ref, as CloudFormation has them."""
    if isinstance(value, str):
        return value
    (function, argument), = value.items()
    if function == "Fn::Not":
        return not evaluate(argument[0])
    if function == "Fn::Equals":
        return evaluate(argument[0]) == evaluate(argument[1])
    if function == "Fn::Or":
        return any(evaluate(part) for part in argument)
    if function == "Condition":
        return condition(argument)
    if function == "Ref":
        return parameter(argument)
    raise AssertionError(f"cannot evaluate {value!r}")


def expand(statements: list) -> list[dict]:
    """Statements with each Fn::If resolved, and AWS::NoValue left out."""
    found = []
    for statement in statements:
        while isinstance(statement, dict) and set(statement) == {"Fn::If"}:
            name, when_true, when_false = statement["Fn::If"]
            statement = when_true if condition(name) else when_false
        if statement != {"Ref": "AWS::NoValue"}:
            found.append(statement)
    return found


def parameter_arn(name: str, region: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:ssm:{region}:ACCOUNT:parameter/{name.lstrip('/')}"


def secret_arn(name: str, region: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:secretsmanager:{region}:ACCOUNT:secret:{name}"


def table_arn(table: str, region: str) -> str:
    return f"arn:aws:dynamodb:{region}:ACCOUNT:table/{table}"


def ref(name: str) -> str:
    """What !Ref returns, canonically: secrets as their ARN without the random suffix."""
    if name in PSEUDO:
        return PSEUDO[name]
    if name in TEMPLATE["Parameters"]:
        return parameter(name)
    resource = RESOURCES[name]
    kind, props = resource["Type"], resource.get("Properties", {})
    if kind == "AWS::SSM::Parameter":
        return props["Name"]
    if kind == "AWS::SecretsManager::Secret":
        return secret_arn(props["Name"], "REGION")
    if kind == "AWS::DynamoDB::Table":
        return props["TableName"]
    return f"<{kind} {name}>"  # managed policies, log groups, the layer: identified by logical id


def get_att(name: str, attribute: str) -> str:
    kind = RESOURCES[name]["Type"]
    if (kind, attribute) == ("AWS::DynamoDB::Table", "Arn"):
        return table_arn(RESOURCES[name]["Properties"]["TableName"], "REGION")
    return f"<{kind} {name}.{attribute}>"


def render(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (function, argument), = value.items()
        if function == "Ref":
            return ref(argument)
        if function == "Fn::GetAtt":
            name, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return get_att(name, attribute)
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            def substitute(match: re.Match) -> str:
                name = match.group(1)
                if name in variables:
                    return render(variables[name])
                return get_att(*name.split(".", 1)) if "." in name else ref(name)
            return re.sub(r"\$\{([^}!]+)\}", substitute, text)
    raise AssertionError(f"cannot render {value!r}")


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def statements_of_role(role_id: str) -> list[dict]:
    role = RESOURCES[role_id]
    assert role["Type"] == "AWS::IAM::Role", role_id
    props = role["Properties"]
    statements = [s for policy in props.get("Policies", []) for s in expand(as_list(policy["PolicyDocument"]["Statement"]))]
    for arn in props.get("ManagedPolicyArns", []):
        # Only this template's own policies: no AWS-managed ones (AWSLambdaBasicExecutionRole writes logs to "*").
        assert isinstance(arn, dict) and "Ref" in arn, f"{role_id}: managed policy {arn!r} is not one of this template's"
        policy = RESOURCES[arn["Ref"]]
        assert policy["Type"] == "AWS::IAM::ManagedPolicy"
        statements += expand(as_list(policy["Properties"]["PolicyDocument"]["Statement"]))
    return statements


def all_policy_statements() -> dict[str, list[dict]]:
    found = {}
    for name, resource in RESOURCES.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            found[name] = expand(as_list(props["PolicyDocument"]["Statement"]))
        elif resource["Type"] == "AWS::IAM::Role":
            found[name] = [s for p in props.get("Policies", []) for s in expand(as_list(p["PolicyDocument"]["Statement"]))]
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::User", "AWS::IAM::Group"):
            raise AssertionError(f"{name}: unexpected {resource['Type']}")
    return found


def function_role(function: str) -> str:
    role = RESOURCES[function]["Properties"].get("Role")
    assert role == {"Fn::GetAtt": [role["Fn::GetAtt"][0], "Arn"]}, f"{function}: Role must be !GetAtt <role>.Arn"
    return role["Fn::GetAtt"][0]


def expected_reads() -> dict[str, set[str]]:
    """config.yaml's items as the ARNs each read action must be granted on, in the function's region."""
    parameters, secrets, tables = set(), set(), set()
    for item in CONFIG.items:
        if item.source == "parameters":
            parameters.add(parameter_arn(item.name, item.region))
            if item.name.startswith(SECRETS_REFERENCE):  # SSM reads the secret as the caller
                secrets.add(secret_arn(item.name.removeprefix(SECRETS_REFERENCE), item.region))
        elif item.source == "secrets":
            secrets.add(secret_arn(item.name, item.region))
        elif item.source == "dynamodb":
            tables.add(table_arn(item.table, item.region))
    return {"ssm:GetParameters": parameters, "secretsmanager:GetSecretValue": secrets, "dynamodb:BatchGetItem": tables}


# ----------------------------------------------------------------------------------------------------
# Lint and least privilege
# ----------------------------------------------------------------------------------------------------

def test_cfn_lint_finds_nothing():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint if cfn_lint.exists() else "cfn-lint"), str(TEMPLATE_PATH)],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_no_wildcards_and_only_the_expected_actions():
    statements = all_policy_statements()
    assert set(statements) == {"ExampleReadPolicy", "SampleItemWriterRole", "PythonExampleRole",
                               "NodejsExampleRole", "JavaExampleRole"}
    for owner, owned in statements.items():
        for statement in owned:
            assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
            actions = set(as_list(statement["Action"]))
            allowed = READ_ACTIONS | LOG_ACTIONS | (WRITER_ACTIONS if owner == "SampleItemWriterRole" else set())
            assert actions <= allowed, f"{owner}: {actions - allowed}"
            for resource in as_list(statement["Resource"]):
                assert "*" not in json.dumps(resource), f"{owner}: wildcard resource {resource!r}"
                assert "*" not in render(resource), f"{owner}: wildcard resource {resource!r}"
            if actions & LOG_ACTIONS:  # logs go to the role's own log group only
                assert actions <= LOG_ACTIONS and len(as_list(statement["Resource"])) == 1
                assert render(statement["Resource"]).startswith("<AWS::Logs::LogGroup ")
    # The sample item's writer: put and delete in the sample table, and its own logs.
    writer = RESOURCES["SampleItemWriterFunction"]["Properties"]
    assert writer["Role"] == {"Fn::GetAtt": ["SampleItemWriterRole", "Arn"]}
    writer_log_group = f"<AWS::Logs::LogGroup {writer['LoggingConfig']['LogGroup']['Ref']}.Arn>"
    table = table_arn(RESOURCES["DynamoDbTable"]["Properties"]["TableName"], "REGION")
    assert {(action, render(resource)) for s in statements["SampleItemWriterRole"] for action in as_list(s["Action"])
            for resource in as_list(s["Resource"])} == {
        ("dynamodb:PutItem", table), ("dynamodb:DeleteItem", table),
        ("logs:CreateLogStream", writer_log_group), ("logs:PutLogEvents", writer_log_group)}
    for role_id in ("SampleItemWriterRole", "PythonExampleRole", "NodejsExampleRole", "JavaExampleRole"):
        trust = RESOURCES[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert [(s["Principal"], s["Action"]) for s in trust] == [({"Service": "lambda.amazonaws.com"}, "sts:AssumeRole")]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_reads_exactly_what_config_lists(function):
    props = RESOURCES[function]["Properties"]
    assert "Policies" not in props, "SAM would add AWSLambdaBasicExecutionRole (logs on *): use the explicit role"
    statements = statements_of_role(function_role(function))
    granted: dict[str, set[str]] = {}
    for statement in statements:
        for action in as_list(statement["Action"]):
            granted.setdefault(action, set()).update(render(r) for r in as_list(statement["Resource"]))
    expected = expected_reads()
    assert all(arns for arns in expected.values()), "config.yaml lists parameters, secrets and DynamoDB items"
    for action, arns in expected.items():
        assert granted.get(action) == arns, f"{function}: {action}"
    read_resources = set().union(*(granted.get(a, set()) for a in READ_ACTIONS))
    assert read_resources == set().union(*expected.values()), f"{function} may read more than config.yaml lists"
    assert granted.get("ssm:GetParameter", set()) <= expected["ssm:GetParameters"]
    assert granted.get("dynamodb:GetItem", set()) <= expected["dynamodb:BatchGetItem"]
    assert "secretsmanager:BatchGetSecretValue" not in granted, "authorized on * only; the extension falls back"
    # A LeadingKeys condition must let every configured item of the table through.
    for statement in statements:
        condition = statement.get("Condition", {}).get("ForAllValues:StringEquals", {}).get("dynamodb:LeadingKeys")
        if condition is not None:
            tables = {render(r) for r in as_list(statement["Resource"])}
            keys = {next(iter(item.key[next(iter(item.key))].values())) for item in CONFIG.by_source("dynamodb")
                    if table_arn(item.table, item.region) in tables}
            assert set(as_list(condition)) == keys, f"{function}: LeadingKeys {condition} != configured {keys}"
    # Its logs: only its own log group, the one its LoggingConfig names.
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    for action in LOG_ACTIONS:
        assert granted[action] == {f"<AWS::Logs::LogGroup {log_group}.Arn>"}, f"{function}: {action} beyond its log group"


def test_template_resources_are_what_config_names():
    assert CONFIG.allow is None, "the template grants exact resources: an allow: section would need prefixes"
    names = {(r["Type"], r["Properties"].get("Name") or r["Properties"].get("TableName")) for r in RESOURCES.values()
             if r["Type"] in ("AWS::SSM::Parameter", "AWS::SecretsManager::Secret", "AWS::DynamoDB::Table")}
    configured = {("AWS::SSM::Parameter", item.name) for item in CONFIG.by_source("parameters")
                  if not item.name.startswith(SECRETS_REFERENCE)}
    configured |= {("AWS::SecretsManager::Secret", item.name) for item in CONFIG.by_source("secrets")}
    configured |= {("AWS::DynamoDB::Table", item.table) for item in CONFIG.by_source("dynamodb")}
    assert names == configured
    assert RESOURCES["SampleParameter"]["Properties"]["Value"] == "MyParameter"
    assert RESOURCES["SampleSecret"]["Properties"]["SecretString"] == "MySecret"
    table = RESOURCES["DynamoDbTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [("pKey", "HASH"), ("sKey", "RANGE")]


def test_layer_and_functions_are_wired_for_the_extension():
    layer = RESOURCES["CacheExtensionLayer"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12", "python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Metadata"]["BuildArchitecture"] == {"Ref": "Architecture"}
    for arch in TEMPLATE["Parameters"]["Architecture"]["AllowedValues"]:  # ContextPath: sam/layer-${Architecture}
        context = ROOT / layer["Metadata"]["ContextPath"]["Fn::Sub"].replace("${Architecture}", arch)
        assert f"ARCH := {arch}" in (context / "Makefile").read_text()
    globals_ = TEMPLATE["Globals"]["Function"]
    assert globals_["Layers"] == [{"Ref": "CacheExtensionLayer"}]
    assert globals_["Architectures"] == [{"Ref": "Architecture"}]
    variables = globals_["Environment"]["Variables"]
    settings = load_settings({**{k: v for k, v in variables.items() if isinstance(v, str)}, "AWS_SESSION_TOKEN": "t"})
    assert (settings.init_startup, settings.ttl, settings.log_level) == (True, 300, "INFO")
    runtimes = {}
    for function in FUNCTIONS:
        resource = RESOURCES[function]
        assert resource["Metadata"] == {"BuildMethod": "makefile", "ContextPath": "sam"}, function
        assert (ROOT / resource["Properties"]["CodeUri"]).is_dir()
        runtimes[function] = resource["Properties"]["Runtime"]
    assert runtimes["PythonExampleFunction"] == "python3.12"
    assert RESOURCES["PythonExampleFunction"]["Properties"]["Handler"] == "app.handler"
    assert RESOURCES["JavaExampleFunction"]["Properties"]["Handler"] == "example.Handler::handleRequest"
    assert RESOURCES["NodejsExampleFunction"]["Properties"]["Handler"] == "index.handler"
    assert set(TEMPLATE["Outputs"]) >= {"CacheExtensionLayerArn", *(f"{f}Name" for f in FUNCTIONS), *(f"{f}Arn" for f in FUNCTIONS)}


# ----------------------------------------------------------------------------------------------------
# events/ and env.json
# ----------------------------------------------------------------------------------------------------

def declared_variables(function: str) -> set[str]:
    own = RESOURCES[function]["Properties"].get("Environment", {}).get("Variables", {})
    return set(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]) | set(own)


def test_events_are_json_objects():
    events = sorted((ROOT / "events").glob("*.json"))
    assert "invoke.json" in [e.name for e in events]
    for event in events:
        assert isinstance(json.loads(event.read_text()), dict), event.name


def test_env_json_overrides_each_function():
    env = json.loads((ROOT / "env.json").read_text())
    assert set(env) == set(FUNCTIONS)
    for function, variables in env.items():
        assert {"CACHE_EXTENSION_INIT_STARTUP", "CACHE_EXTENSION_TTL", "CACHE_EXTENSION_LOG_LEVEL"} <= set(variables)
        assert all(isinstance(v, str) for v in variables.values()), function
        # sam local invoke only overrides variables the template declares for the function.
        assert set(variables) <= declared_variables(function), function
        load_settings({**variables, "AWS_SESSION_TOKEN": "t"})  # values the extension accepts


# ----------------------------------------------------------------------------------------------------
# The sample item's custom resource, run against moto
# ----------------------------------------------------------------------------------------------------

class ResponseCatcher(http.server.ThreadingHTTPServer):
    """Stands in for CloudFormation's pre-signed response URL: records every PUT body."""

    def __init__(self) -> None:
        self.replies: list[dict] = []
        catcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                catcher.replies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/response?signature=x"


def test_sample_item_custom_resource(monkeypatch, moto):
    """Against the session's moto server in a region no other test uses (not mock_aws, which would wipe the
    state that server shares with this process: the sample resources other tests read)."""
    import boto3

    code = RESOURCES["SampleItemWriterFunction"]["Properties"]["Code"]["ZipFile"]
    assert len(code) <= 4096, "CloudFormation's inline code limit"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    context = SimpleNamespace(log_stream_name="2026/01/01/[$LATEST]abc")
    catcher = ResponseCatcher()
    dynamodb = boto3.client("dynamodb")
    try:
        table = RESOURCES["DynamoDbTable"]["Properties"]
        dynamodb.create_table(TableName=table["TableName"], BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=table["AttributeDefinitions"], KeySchema=table["KeySchema"])
        module: dict = {}
        exec(compile(code, "SampleItemWriterFunction/index.py", "exec"), module)

        def request(kind: str, table_name: str, physical_id: str | None = None) -> dict:
            event = {"RequestType": kind, "ResponseURL": catcher.url, "StackId": "arn:aws:cloudformation:stack",
                     "RequestId": f"req-{kind}", "LogicalResourceId": "SampleItem",
                     "ResourceProperties": {"ServiceToken": "arn", "TableName": table_name}}
            if physical_id:
                event["PhysicalResourceId"] = physical_id
            module["handler"](event, context)
            reply = catcher.replies.pop()
            assert catcher.replies == []
            assert (reply["RequestId"], reply["LogicalResourceId"], reply["StackId"]) == (
                f"req-{kind}", "SampleItem", "arn:aws:cloudformation:stack")
            return reply

        key = {"pKey": {"S": "pKey1"}, "sKey": {"S": "sKey1"}}
        reply = request("Create", "DynamoDbTable")
        assert (reply["Status"], reply["PhysicalResourceId"]) == ("SUCCESS", "DynamoDbTable/pKey1/sKey1")
        item = dynamodb.get_item(TableName="DynamoDbTable", Key=key)["Item"]
        assert item == {**key, "Data": {"S": "DynamoDB sample data"}}

        assert request("Update", "DynamoDbTable", "DynamoDbTable/pKey1/sKey1")["Status"] == "SUCCESS"
        reply = request("Delete", "DynamoDbTable", "DynamoDbTable/pKey1/sKey1")
        assert (reply["Status"], reply["PhysicalResourceId"]) == ("SUCCESS", "DynamoDbTable/pKey1/sKey1")
        assert "Item" not in dynamodb.get_item(TableName="DynamoDbTable", Key=key)

        failed = request("Create", "NoSuchTable")  # answers FAILED rather than leaving the stack waiting
        assert failed["Status"] == "FAILED" and "ResourceNotFoundException" in failed["Reason"]
        assert request("Delete", "NoSuchTable", "NoSuchTable/pKey1/sKey1")["Status"] == "SUCCESS"
    finally:
        catcher.shutdown()
        catcher.server_close()
        if "DynamoDbTable" in dynamodb.list_tables()["TableNames"]:
            dynamodb.delete_table(TableName="DynamoDbTable")


# ----------------------------------------------------------------------------------------------------
# sam/Makefile, the SAM CLI and the build
# ----------------------------------------------------------------------------------------------------

def java_class_major_version(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[6:8], "big")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_makefile_builds_the_function_package(function, tmp_path):
    """What SAM does for a makefile build: make build-<LogicalId> in a copy of the CodeUri."""
    if function == "JavaExampleFunction":
        assert shutil.which("javac") and shutil.which("jar"), "a JDK 11+ is needed (it is on the CI machine)"
    scratch, artifacts = tmp_path / "scratch", tmp_path / "artifacts"
    shutil.copytree(ROOT / RESOURCES[function]["Properties"]["CodeUri"], scratch)
    run(["make", "--makefile", ROOT / "sam" / "Makefile", f"build-{function}"], cwd=scratch, timeout=180,
        env={**SAM_ENV, "ARTIFACTS_DIR": str(artifacts)})
    files = {p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*") if p.is_file()}
    assert (artifacts / "config.yaml").read_bytes() == (ROOT / "config.yaml").read_bytes()
    assert not any("__pycache__" in f for f in files)
    if function == "PythonExampleFunction":
        assert "app.py" in files
    elif function == "NodejsExampleFunction":
        assert {"index.mjs", "package.json"} <= files
    else:
        # Only the function's classes: the client jar is the layer's (/opt/java/lib), compiled against only.
        assert files == {"config.yaml", "example/Handler.class"}
        assert java_class_major_version(artifacts / "example" / "Handler.class") == 55  # --release 11


def test_layer_target_needs_an_architecture(tmp_path):
    result = subprocess.run(["make", "--makefile", str(ROOT / "sam" / "Makefile"), "build-CacheExtensionLayer"],
                            cwd=tmp_path, env={**SAM_ENV, "ARTIFACTS_DIR": str(tmp_path / "out")},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "ARCH is not set" in result.stderr


@pytest.fixture(scope="session")
def sam() -> Path:
    """The SAM CLI from .venv-sam, installed by scripts/check-template on first use (bounded in time)."""
    try:
        result = run([CHECK_TEMPLATE, "--sam-path"], timeout=SAM_INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"installing the SAM CLI into .venv-sam took more than {SAM_INSTALL_TIMEOUT} s")
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file(), path
    return path


def test_sam_validate_lint(sam):
    result = run([sam, "validate", "--lint", "--template", TEMPLATE_PATH], timeout=180)
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_check_template_script(sam):
    assert "--build" in run([CHECK_TEMPLATE, "--help"], timeout=30).stdout
    run([CHECK_TEMPLATE], timeout=300)


@pytest.fixture(scope="module")
def sam_build(sam, tmp_path_factory) -> Path:
    """sam build of the Python function, which builds its layer too (CacheExtensionLayer, through sam/Makefile)."""
    out = tmp_path_factory.mktemp("sam-build")
    run([sam, "build", "PythonExampleFunction", "--template-file", TEMPLATE_PATH, "--build-dir", out,
         "--parameter-overrides", "Architecture=x86_64"], timeout=600)
    return out


def test_sam_build_layer_is_laid_out_as_opt(sam_build):
    layer = sam_build / "CacheExtensionLayer"
    launcher = layer / "extensions" / "cache-extension"
    assert launcher.is_file() and os.access(launcher, os.X_OK)
    # Exactly /opt's directories: build-layer's zip stays out of SAM's build directory.
    assert sorted(p.name for p in layer.iterdir()) == ["cache-extension", "extensions", "java", "nodejs", "python"]
    assert not list(sam_build.glob("*.zip"))
    package = layer / "cache-extension"
    for needed in ("__main__.py", "cache_extension/main.py", "botocore", "yaml", "uvloop", "httptools"):
        assert (package / needed).exists(), needed
    assert list(package.glob("cache_extension/__pycache__/*.cpython-312.pyc")), "bytecode for the function's Python"
    assert list(package.glob("yaml/_yaml.cpython-312-x86_64-linux-gnu.so")), "the x86_64 wheels"
    assert (layer / "python" / "cache_extension_client" / "__init__.py").is_file()
    assert (layer / "nodejs" / "node_modules" / "cache-extension-client" / "package.json").is_file()
    assert (layer / "java" / "lib" / "cache-extension-client.jar").is_file()


def test_sam_build_python_function_has_code_and_config(sam_build):
    function = sam_build / "PythonExampleFunction"
    assert (function / "app.py").read_bytes() == (ROOT / "function-example" / "python" / "app.py").read_bytes()
    assert (function / "config.yaml").read_bytes() == (ROOT / "config.yaml").read_bytes()
    assert not list(function.rglob("__pycache__"))
    built = cfn_yaml.load(str(sam_build / "template.yaml"))["Resources"]
    assert built["PythonExampleFunction"]["Properties"]["CodeUri"] == "PythonExampleFunction"
    assert built["CacheExtensionLayer"]["Properties"]["ContentUri"] == "CacheExtensionLayer"
