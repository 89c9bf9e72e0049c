"""Engine processes: what owns the models, behind the API processes (issue 20's design).

An engine serves typed requests (altlas.engine.messages) that API processes send over ZeroMQ
(altlas.engine.core.Engine on a ROUTER socket, altlas.engine.client.EngineClient on a DEALER
one): arrays come back as raw bytes beside a small MessagePack header, errors as the kind,
message and field of the same AltlasError, so the HTTP answer is the one a local model gives.
"""
