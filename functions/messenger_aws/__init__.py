"""What every Lambda function of the project makes the same way, whatever its asset: boto3
clients, each made once per container at first use (`clients.Clients`).

Shipped in the messenger's asset and in the directory's (infra/bundling.py), so that both
packages import it; it imports nothing but the runtime's boto3 and botocore.
"""
