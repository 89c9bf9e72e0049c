"""HTTP front processes: many processes read HTTP, one process runs the models.

One Python process reads, parses and answers HTTP for every request, and batches and runs the
models too; a server of many small requests (one sentence to embed) is then bound by that one
event loop and by the GIL it shares with the model's threads, not by the GPU. With
`altlas serve --http-workers N` (ALTLAS_HTTP_WORKERS), N front processes share the public port
(SO_REUSEPORT) and take that work (vLLM and TGI split the same way: HTTP in front, one engine
behind):

- a front process answers the direct lanes' requests (POST /v1/embeddings) itself: it parses
  the request, sends its path, headers and body to the server process over a local socket
  (`wire`), and writes the answer it gets back. The server process does what it does for its
  own lane requests (altlas.api.lane_requests: keys, limits, request id, validation, the
  model's batcher, errors, logs and metrics), with no HTTP work of its own;
- any other request, or a lane request the server declines, is handed over whole: the front
  process passes the connection itself (its file descriptor, SCM_RIGHTS) and the bytes it has
  read to the server process, whose own HTTP stack then serves that connection as if it had
  accepted it. So every route, streaming answer, upload and error behaves as without fronts.

`worker` is the front process, `hub` the server process's side (the sockets, handing lane
requests to the lanes, taking connections over, starting and restarting the workers).
"""
