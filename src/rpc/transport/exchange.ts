// The request and response objects Node makes for each call (HTTP/1.1's, or
// HTTP/2's compatibility API, which Node creates for every stream of a
// server with a request handler), and what the transport does with them
// when a call begins and once it is over.

import type http from "node:http";
import http2 from "node:http2";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import type { Logger } from "../../log.js";
import type { CallLog } from "../call-log.js";
import { requestBodyKey } from "./gate.js";
import { RequestBody } from "./request-body.js";

export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;
export type NodeHandler = (request: NodeRequest, response: NodeResponse) => void;

/** The request's path without its query. */
export function pathOf(request: NodeRequest): string {
  return request.url?.split("?", 2)[0] ?? "";
}

/**
 * What every call's exchange needs before the gate sees it (on either path):
 * its body as a RequestBody under requestBodyKey in `values` (returned too),
 * let go once the answer is out if nobody read it, and the call's log line
 * and metrics written once the response has closed.
 */
export function beginCall(request: NodeRequest, response: NodeResponse, values: ContextValues, callLog: CallLog): RequestBody {
  stopUnreadBodyAfterAnswer(request, response);
  const body = new RequestBody(request);
  values.set(requestBodyKey, body);
  onResponseClosed(response, (answered) => callLog.closed(values, answered));
  return body;
}

/**
 * Once the call's answer is out, lets go of a body that nobody will read (a
 * refused request's): HTTP/2 tells the client to stop sending it, with
 * RST_STREAM NO_ERROR after the trailers that end the response (RFC 9113
 * §8.1), and drops what already arrived, which counts against the
 * connection's flow-control window; HTTP/1.1 reads it to its end and drops
 * it, so that the connection can carry the next request (Node does that
 * itself only for a body nobody began to read).
 */
function stopUnreadBodyAfterAnswer(request: NodeRequest, response: NodeResponse): void {
  if (!("stream" in request)) {
    response.once("finish", () => {
      if (!request.complete) request.resume();
    });
    return;
  }
  const stream = request.stream;
  // Node's own listener (the compatibility response's, registered first) sends the trailers in a setImmediate: the reset follows them.
  stream.once("wantTrailers", () =>
    setImmediate(() => {
      if (request.complete || stream.closed || stream.destroyed) return;
      request.resume();
      stream.close(http2.constants.NGHTTP2_NO_ERROR);
    }),
  );
}

/**
 * Calls `closed` once the response has closed, saying whether the answer
 * went out whole (HTTP/2: its trailers, which end every response here, were
 * sent, and the client did not reset the stream; HTTP/1.1: the response
 * finished) or the client left first.
 */
function onResponseClosed(response: NodeResponse, closed: (answered: boolean) => void): void {
  response.once("close", () => {
    if (!("stream" in response)) return closed(response.writableFinished);
    const { sentTrailers, rstCode } = response.stream;
    closed(sentTrailers !== undefined && (rstCode === undefined || rstCode === http2.constants.NGHTTP2_NO_ERROR));
  });
}

/**
 * A call whose answer could not be written. If its client has gone, that is
 * the end of it. Otherwise (a header the response cannot carry, say) it is
 * logged as a fault and ended now, with RST_STREAM INTERNAL_ERROR (which gRPC
 * clients report as INTERNAL) or a closed HTTP/1.1 connection, rather than
 * left to the caller's deadline. The response's own headers may be what
 * failed, so none are sent.
 */
export function unanswered(call: string, reason: unknown, request: NodeRequest, response: NodeResponse, log: Logger): void {
  const error = ConnectError.from(reason);
  if (error.code === Code.Aborted || request.destroyed) {
    log.debug("the client left before its answer was written", { call });
    return;
  }
  log.error("handler failed", { call, error: error.message });
  if ("stream" in response) {
    if (!response.stream.destroyed) response.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  } else {
    response.destroy();
  }
}
