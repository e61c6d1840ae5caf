"""HTTP: the route table, middlewares, codecs, handlers, the OpenAPI document."""
