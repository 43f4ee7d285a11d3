"""Prints, as JSON, the execution role aws-sam-translator generates for every function of a SAM
template: {"<Function>": {"ManagedPolicyArns": [...], "Policies": [...]}}. It needs no AWS account:
local CodeUris are replaced as `sam validate` replaces them, and the region is fixed.

usage: python sam_roles.py template.yaml
"""
import json
import os
import sys

from samtranslator.translator.arn_generator import ArnGenerator
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The translator asks IAM for managed policies it does not know by name; the roles here
    name only policies it knows, so asking is an error."""

    def load(self):
        raise RuntimeError("the template names a managed policy aws-sam-translator does not know")


def main(path):
    ArnGenerator.BOTO_SESSION_REGION_NAME = "us-east-1"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(path) as f:
        sam = yaml_parse(f.read())
    glob = sam.get("Globals", {}).get("Function", {})
    if isinstance(glob.get("CodeUri"), str) and not glob["CodeUri"].startswith("s3://"):
        glob["CodeUri"] = "s3://bucket/value"
    functions = []
    for name, res in sam.get("Resources", {}).items():
        if res.get("Type") == "AWS::Serverless::Function":
            functions.append(name)
            props = res.setdefault("Properties", {})
            if isinstance(props.get("CodeUri"), str) and not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = "s3://bucket/value"
    cfn = transform(sam, {"AWS::Region": "us-east-1"}, NoManagedPolicies())
    roles = {}
    for name in functions:
        props = cfn["Resources"][name + "Role"]["Properties"]
        roles[name] = {k: props[k] for k in ("ManagedPolicyArns", "Policies") if k in props}
    json.dump(roles, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
