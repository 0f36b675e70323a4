"""The AWS CDK app that deploys the messenger (see README, "Deploy to AWS")."""
