"""Conformance cases: requests written for AWS's Parameters and Secrets Lambda Extension ("lambda-extension")
and for the AWS Secrets Manager Agent ("agent"), each with what that product documents or tests, and the
source it was written from. Written here from those sources (no case is copied from their code or tests).

A case: id, product, source, request (method, path with query, headers), expect (status; json: field ->
value, or a type name "str"/"int"/"null"/"absent"/"rfc3339"/"epoch-string"/"base64:<text>"; text; headers;
aws_calls: how many AWS calls the request may cause), and, where we deliberately differ from the product,
differs: why. `setup` names a step the runner takes before the request (tests/test_conformance.py).

Placeholders in paths, headers and expected values, filled in by the runner from the resources it creates:
{param} {param_arn} {flat} {flat_arn} {secure} {allowed_param} {unlisted_param} {secret} {secret_arn}
{secret_partial_arn} {secret_v1} {secret_v2} {binary} {allowed_secret} {unlisted_secret} {rotating}
{token} {account} {region}; {q:NAME} is the placeholder percent-encoded for a query.
"""

SSM_GUIDE = "https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-integration-lambda-extensions.html"
SM_GUIDE = "https://docs.aws.amazon.com/secretsmanager/latest/userguide/retrieving-secrets_lambda.html"
GET_PARAMETER = "https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameter.html"
GET_SECRET_VALUE = "https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html"
AGENT = "github.com/aws/aws-secretsmanager-agent"
AGENT_README = f"{AGENT}/README.md"
AGENT_PARSE = f"{AGENT}/aws_secretsmanager_agent/src/parse.rs"
AGENT_SERVER = f"{AGENT}/aws_secretsmanager_agent/src/server.rs"
AGENT_CONFIG = f"{AGENT}/aws_secretsmanager_agent/src/config.rs"
AGENT_ERRORS = f"{AGENT}/aws_secretsmanager_agent/src/cache_manager.rs + src/utils.rs (err_response)"
AGENT_OUTPUT = f"{AGENT}/aws_secretsmanager_caching/src/output.rs"
AGENT_IT = f"{AGENT}/integration-tests/tests"

LE, AG = "lambda-extension", "agent"
SSM = "/systemsmanager/parameters/get"
SM = "/secretsmanager/get"
TOKEN = {"X-Aws-Parameters-Secrets-Token": "{token}"}
VAULT = {"X-Vault-Token": "{token}"}


def case(id, product, source, path, expect, *, method="GET", headers=TOKEN, differs=None, setup=None):
    return {"id": id, "product": product, "source": source,
            "request": {"method": method, "path": path, "headers": headers},
            "expect": expect, "differs": differs, "setup": setup}


CASES = [
    # --- Parameters and Secrets Lambda Extension: Parameter Store --------------------------------------
    case("ssm-get-by-name", LE, SSM_GUIDE, f"{SSM}?name={{q:param}}",
         {"status": 200, "headers": {"content-type": "application/json"},
          "json": {"Parameter.Name": "{param}", "Parameter.Value": "plain-value-2", "Parameter.Type": "String",
                   "Parameter.Version": 2, "Parameter.ARN": "{param_arn}", "Parameter.DataType": "text"}}),
    case("ssm-response-fields", LE, GET_PARAMETER, f"{SSM}?name={{q:param}}",
         {"status": 200, "json": {"Parameter.LastModifiedDate": "rfc3339", "Parameter.Version": "int",
                                  "Parameter.Selector": "null", "Parameter.SourceResult": "null", "ResultMetadata": {}}}),
    case("ssm-trailing-slash", LE, SSM_GUIDE + " (examples end the path with '/')", f"{SSM}/?name={{q:param}}",
         {"status": 200, "json": {"Parameter.Value": "plain-value-2"}}),
    case("ssm-by-version", LE, SSM_GUIDE + " (version=)", f"{SSM}?name={{q:param}}&version=1",
         {"status": 200, "json": {"Parameter.Value": "plain-value-1", "Parameter.Version": 1, "Parameter.Selector": ":1"}}),
    case("ssm-by-label", LE, SSM_GUIDE + " (label=)", f"{SSM}?name={{q:param}}&label=stable",
         {"status": 200, "json": {"Parameter.Value": "plain-value-1", "Parameter.Selector": ":stable"}}),
    case("ssm-by-arn", LE, GET_PARAMETER + " (Name: name or ARN)", f"{SSM}?name={{q:param_arn}}",
         {"status": 200, "json": {"Parameter.Name": "{param}", "Parameter.Value": "plain-value-2"}}),
    case("ssm-by-arn-flat-name", LE, GET_PARAMETER + " (Name: name or ARN)", f"{SSM}?name={{q:flat_arn}}",
         {"status": 200, "json": {"Parameter.Name": "{flat}", "Parameter.Value": "flat-value"}}),
    case("ssm-by-arn-and-version", LE, GET_PARAMETER, f"{SSM}?name={{q:param_arn}}&version=1",
         {"status": 200, "json": {"Parameter.Value": "plain-value-1"}}),
    case("ssm-arn-other-account", LE, GET_PARAMETER + " (another account's parameter needs its own ARN)",
         f"{SSM}?name=arn%3Aaws%3Assm%3A{{region}}%3A999999999999%3Aparameter{{q:param}}",
         {"status": 404, "json": {"__type": "NotConfigured"}},
         differs="a name neither configured nor allowed is 404 NotConfigured; the configured item's own ARN is checked"),
    case("ssm-arn-other-region", LE, GET_PARAMETER, f"{SSM}?name=arn%3Aaws%3Assm%3Aeu-north-1%3A{{account}}%3Aparameter{{q:param}}",
         {"status": 404, "json": {"__type": "NotConfigured"}, "aws_calls": 0},
         differs="not configured in that region: 404 with no AWS call"),
    case("ssm-securestring-with-decryption", LE, SSM_GUIDE + " (withDecryption=true)",
         f"{SSM}?name={{q:secure}}&withDecryption=true",
         {"status": 200, "json": {"Parameter.Value": "secure-value", "Parameter.Type": "SecureString"}}),
    case("ssm-securestring-without-decryption", LE, SSM_GUIDE, f"{SSM}?name={{q:secure}}",
         {"status": 400, "json": {"__type": "DecryptionRequired"}},
         differs="AWS returns the ciphertext; values are cached decrypted only, so we refuse (400) instead"),
    case("ssm-with-decryption-false-string", LE, GET_PARAMETER + " (WithDecryption ignored for String)",
         f"{SSM}?name={{q:param}}&withDecryption=false", {"status": 200, "json": {"Parameter.Value": "plain-value-2"}}),
    case("ssm-missing-name", LE, SSM_GUIDE + " (name is required)", SSM, {"status": 400, "json": {"__type": "str"}}),
    case("ssm-version-and-label", LE, GET_PARAMETER + " (one selector: name:version or name:label)",
         f"{SSM}?name={{q:param}}&version=1&label=stable", {"status": 400}),
    case("ssm-missing-version", LE, GET_PARAMETER + " (ParameterVersionNotFound, HTTP 400)",
         f"{SSM}?name={{q:param}}&version=9", {"status": 400, "json": {"__type": "ParameterVersionNotFound"}}),
    case("ssm-allowed-but-missing", LE, GET_PARAMETER + " (ParameterNotFound, HTTP 400)",
         f"{SSM}?name=%2Fconf%2Fallowed%2Fno-such-parameter", {"status": 400, "json": {"__type": "ParameterNotFound"}}),
    case("ssm-allowed-on-demand", LE, SSM_GUIDE, f"{SSM}?name={{q:allowed_param}}",
         {"status": 200, "json": {"Parameter.Value": "allowed-value"}}),
    case("ssm-unlisted", LE, SSM_GUIDE, f"{SSM}?name={{q:unlisted_param}}",
         {"status": 404, "json": {"__type": "NotConfigured"}, "aws_calls": 0},
         differs="AWS's extension reads anything the role may read; ours only what config.yaml lists or allows"),
    case("ssm-unlisted-arn", LE, GET_PARAMETER, f"{SSM}?name=arn%3Aaws%3Assm%3A{{region}}%3A{{account}}%3Aparameter{{q:unlisted_param}}",
         {"status": 404, "json": {"__type": "NotConfigured"}, "aws_calls": 0},
         differs="an ARN does not widen what can be read"),
    case("ssm-token-missing", LE, SSM_GUIDE + " (X-Aws-Parameters-Secrets-Token required)", f"{SSM}?name={{q:param}}",
         {"status": 401}, headers={}, differs="AWS documents no status; ours is 401 (403 for a wrong token)"),
    case("ssm-token-wrong", LE, SSM_GUIDE, f"{SSM}?name={{q:param}}", {"status": 403},
         headers={"X-Aws-Parameters-Secrets-Token": "wrong"}),
    case("ssm-post", LE, SSM_GUIDE + " (GET requests)", f"{SSM}?name={{q:param}}", {"status": 405}, method="POST"),

    # --- Parameters and Secrets Lambda Extension: Secrets Manager --------------------------------------
    case("sm-get-by-name", LE, SM_GUIDE, f"{SM}?secretId={{q:secret}}",
         {"status": 200, "headers": {"content-type": "application/json"},
          "json": {"Name": "{secret}", "SecretString": "secret-v2", "ARN": "{secret_arn}", "VersionId": "{secret_v2}",
                   "SecretBinary": "null", "CreatedDate": "rfc3339", "ResultMetadata": {}}}),
    case("sm-version-stages", LE, GET_SECRET_VALUE, f"{SM}?secretId={{q:secret}}",
         {"status": 200, "json": {"VersionStages": ["AWSCURRENT"]}}),
    case("sm-trailing-slash", LE, SM_GUIDE + " (examples end the path with '/')", f"{SM}/?secretId={{q:secret}}",
         {"status": 200, "json": {"SecretString": "secret-v2"}}),
    case("sm-by-full-arn", LE, GET_SECRET_VALUE + " (SecretId: ARN or name)", f"{SM}?secretId={{q:secret_arn}}",
         {"status": 200, "json": {"Name": "{secret}", "SecretString": "secret-v2"}}),
    case("sm-by-partial-arn", LE, GET_SECRET_VALUE + " (partial ARN)", f"{SM}?secretId={{q:secret_partial_arn}}",
         {"status": 200, "json": {"ARN": "{secret_arn}", "SecretString": "secret-v2"}}),
    case("sm-version-stage-previous", LE, SM_GUIDE + " (versionStage=)", f"{SM}?secretId={{q:secret}}&versionStage=AWSPREVIOUS",
         {"status": 200, "json": {"SecretString": "secret-v1", "VersionId": "{secret_v1}", "VersionStages": ["AWSPREVIOUS"]}}),
    case("sm-version-id", LE, SM_GUIDE + " (versionId=)", f"{SM}?secretId={{q:secret}}&versionId={{secret_v1}}",
         {"status": 200, "json": {"SecretString": "secret-v1", "VersionId": "{secret_v1}"}}),
    case("sm-binary", LE, GET_SECRET_VALUE + " (SecretBinary, base64 in JSON)", f"{SM}?secretId={{q:binary}}",
         {"status": 200, "json": {"SecretBinary": "base64:\x00\x01\xfebinary", "SecretString": "null"}}),
    case("sm-allowed-but-missing", LE, GET_SECRET_VALUE + " (ResourceNotFoundException, HTTP 400)",
         f"{SM}?secretId=conf%2Fallowed%2Fno-such-secret", {"status": 400, "json": {"__type": "ResourceNotFoundException"}}),
    case("sm-unlisted", LE, SM_GUIDE, f"{SM}?secretId={{q:unlisted_secret}}",
         {"status": 404, "json": {"__type": "NotConfigured"}, "aws_calls": 0},
         differs="only names config.yaml lists or allows are read: 404 with no AWS call"),
    case("sm-unlisted-by-arn", LE, GET_SECRET_VALUE,
         f"{SM}?secretId=arn%3Aaws%3Asecretsmanager%3A{{region}}%3A{{account}}%3Asecret%3A{{q:unlisted_secret}}",
         {"status": 404, "json": {"__type": "NotConfigured"}, "aws_calls": 0}, differs="an ARN does not widen what can be read"),
    case("sm-missing-secret-id", LE, SM_GUIDE + " (secretId is required)", SM, {"status": 400}),
    case("sm-token-wrong", LE, SM_GUIDE, f"{SM}?secretId={{q:secret}}", {"status": 403},
         headers={"X-Aws-Parameters-Secrets-Token": "wrong"}),

    # --- Secrets Manager Agent --------------------------------------------------------------------------
    case("agent-get", AG, AGENT_README + " (curl example)", f"{SM}?secretId={{q:secret}}",
         {"status": 200, "json": {"Name": "{secret}", "SecretString": "secret-v2", "VersionId": "str"}}),
    case("agent-path-form", AG, AGENT_PARSE + " (path_prefix /v1/, README path_prefix)", "/v1/{secret}",
         {"status": 200, "json": {"Name": "{secret}", "SecretString": "secret-v2", "ARN": "{secret_arn}",
                                  "VersionId": "{secret_v2}", "VersionStages": ["AWSCURRENT"]}}),
    case("agent-path-fields", AG, AGENT_OUTPUT + " (absent fields skipped; CreatedDate seconds.fraction as a string)",
         "/v1/{secret}", {"status": 200, "json": {"SecretBinary": "absent", "ResultMetadata": "absent",
                                                   "CreatedDate": "epoch-string"}}),
    case("agent-path-arn", AG, AGENT_IT + "/secret_retrieval.rs (by ARN)", "/v1/{secret_arn}",
         {"status": 200, "json": {"ARN": "{secret_arn}", "SecretString": "secret-v2"}}),
    case("agent-path-version-stage", AG, AGENT_PARSE + " (versionStage on the path form)",
         "/v1/{secret}?versionStage=AWSPREVIOUS", {"status": 200, "json": {"SecretString": "secret-v1"}}),
    case("agent-path-version-id", AG, AGENT_IT + "/secret_retrieval.rs (versionId)",
         "/v1/{secret}?versionId={secret_v1}", {"status": 200, "json": {"VersionId": "{secret_v1}"}}),
    case("agent-path-binary", AG, AGENT_IT + "/secret_retrieval.rs (binary: SecretBinary a string, SecretString null)",
         "/v1/{binary}", {"status": 200, "json": {"SecretBinary": "base64:\x00\x01\xfebinary", "SecretString": "absent"}}),
    case("agent-path-missing-id", AG, AGENT_PARSE + " (missing secret ID)", "/v1/",
         {"status": 400, "json": {"message": "missing secret ID"}},
         differs="the agent's body is the bare text; ours carries it in {__type, message}"),
    case("agent-path-secret-id-param", AG, AGENT_PARSE + " (the path form takes no secretId)",
         "/v1/{secret}?secretId=x", {"status": 400, "json": {"message": "unknown parameter: secretId"}}),
    case("agent-unknown-parameter", AG, AGENT_PARSE + " (unknown parameter: 400)", f"{SM}?secretId={{q:secret}}&abc=123",
         {"status": 400, "json": {"message": "unknown parameter: abc"}},
         differs="the agent's body is the bare text; ours carries it in {__type, message}"),
    case("agent-missing-secret-id", AG, AGENT_PARSE + " (missing parameter secretId)", f"{SM}?versionStage=AWSCURRENT",
         {"status": 400, "json": {"message": "missing parameter secretId"}}, differs="the agent's body is the bare text; ours carries it in {__type, message}"),
    case("agent-refresh-invalid", AG, AGENT_PARSE + " (invalid refreshNow value)", f"{SM}?secretId={{q:secret}}&refreshNow=123",
         {"status": 400, "json": {"message": "invalid refreshNow value"}}, differs="the agent's body is the bare text; ours carries it in {__type, message}"),
    case("agent-refresh-false", AG, AGENT_PARSE + " (refreshNow false/0, any case)", f"{SM}?secretId={{q:secret}}&refreshNow=FALSE",
         {"status": 200, "json": {"SecretString": "secret-v2"}, "headers": {"x-cache": "hit"}, "aws_calls": 0}),
    case("agent-cached-after-rotation", AG, AGENT_README + " (default: served from the cache until the TTL)",
         f"{SM}?secretId={{q:rotating}}", {"status": 200, "json": {"SecretString": "rotating-v1"}, "aws_calls": 0},
         setup="rotate"),
    case("agent-refresh-now", AG, AGENT_README + " (refreshNow=true) + " + AGENT_IT + "/cache_behavior.rs",
         f"{SM}?secretId={{q:rotating}}&refreshNow=true", {"status": 200, "json": {"SecretString": "rotating-v2"}}),
    case("agent-refresh-now-1", AG, AGENT_PARSE + " (refreshNow=1)", "/v1/{rotating}?refreshNow=1",
         {"status": 200, "json": {"SecretString": "rotating-v2"}}),
    case("agent-missing-secret", AG, AGENT_IT + "/secret_retrieval.rs (nonexistent: 400) + " + AGENT_ERRORS,
         "/v1/conf/allowed/no-such-secret", {"status": 400, "json": {"__type": "ResourceNotFoundException", "message": "str"}}),
    case("agent-unlisted", AG, AGENT_IT + "/secret_retrieval.rs", "/v1/{unlisted_secret}",
         {"status": 404, "json": {"__type": "NotConfigured"}, "aws_calls": 0},
         differs="only names config.yaml lists or allows are read: 404 with no AWS call"),
    case("agent-vault-token", AG, AGENT_CONFIG + " (ssrf_headers default includes X-Vault-Token)",
         f"{SM}?secretId={{q:secret}}", {"status": 200, "json": {"SecretString": "secret-v2"}}, headers=VAULT),
    case("agent-vault-token-path", AG, AGENT_CONFIG, "/v1/{secret}", {"status": 200}, headers=VAULT),
    case("agent-vault-token-wrong", AG, AGENT_SERVER + " (validate_token: 403)", "/v1/{secret}", {"status": 403},
         headers={"X-Vault-Token": "wrong"}),
    case("agent-token-missing", AG, AGENT_IT + "/security.rs (no token: 403)", f"{SM}?secretId={{q:secret}}",
         {"status": 403}, headers={}),
    case("agent-token-missing-path", AG, AGENT_IT + "/security.rs", "/v1/{secret}", {"status": 403}, headers={}),
    case("agent-vault-token-elsewhere", AG, AGENT_CONFIG, f"/secrets?name={{q:secret}}", {"status": 401}, headers=VAULT,
         differs="X-Vault-Token is accepted on the agent's routes only; our own routes keep one token header"),
    case("agent-forwarded", AG, AGENT_IT + "/security.rs (X-Forwarded-For: 400)", "/v1/{secret}", {"status": 400},
         headers={**TOKEN, "X-Forwarded-For": "10.0.0.1"}),
    case("agent-ping", AG, AGENT_SERVER + " (/ping: healthy, no token)", "/ping",
         {"status": 200, "text": "healthy"}, headers={}),
    case("agent-post", AG, AGENT_SERVER + " (validate_method: GET only, 405)", "/v1/{secret}", {"status": 405},
         method="POST"),
    case("agent-unknown-path", AG, AGENT_SERVER + " (other paths: 404)", "/v2/anything", {"status": 404}),
]
