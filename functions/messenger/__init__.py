"""The messenger's Lambda functions: handlers (thin), logic (the rules), dal (DynamoDB),
transport (@connections and push). Frames come from `messenger_protocol`."""
