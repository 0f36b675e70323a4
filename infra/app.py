"""CDK entry point (`cdk.json`: `.venv/bin/python -m infra.app`).

    npx cdk deploy -c env=dev        # or env=prod; README "Deploy to AWS" lists the rest
    npx cdk synth -c bundle=false    # the template only, without building the asset

The stack is environment-agnostic: it deploys to the account and region of the AWS
profile the CLI runs with, and the template is the same on every machine.

cdk-nag's AwsSolutions pack checks the app as a validation plugin: a finding that is not
acknowledged (with its reason, next to the construct that causes it) stops synth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import config_from_context
from infra.stack import MessengerStack

# `-c bundle=false`: synthesize without building the Lambda asset.
BUNDLE_CONTEXT = "bundle"
BUNDLING_STACKS_CONTEXT = "aws:cdk:bundling-stacks"


def build_app(context: Mapping[str, Any] | None = None, outdir: str | None = None) -> App:
    """The app with its one stack; tests pass context (and skip bundling) through here."""
    app = App(context=dict(context or {}), outdir=outdir)
    if str(app.node.try_get_context(BUNDLE_CONTEXT)).lower() == "false":
        # The CLI keeps `aws:cdk:*` context to itself, so this is how a synth that only
        # wants the template (tests, reviews) skips pip. Set before any stack exists.
        app.node.set_context(BUNDLING_STACKS_CONTEXT, [])
    config = config_from_context(app.node.try_get_context)
    MessengerStack(app, config.stack_name, config=config)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
