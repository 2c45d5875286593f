"""The wire: ZeroMQ ingress and outbound PUB, the publisher library, webhook and SMTP edges."""
