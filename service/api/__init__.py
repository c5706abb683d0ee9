"""The HTTP API as declared types: request bodies, answers, operations, and the OpenAPI document
built from them."""
