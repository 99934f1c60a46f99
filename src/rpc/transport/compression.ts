// The encodings the server reads and writes, as the router is given them:
// Connect's own gzip and brotli (zlib underneath), which the request gate
// also uses to inflate the messages it decodes.

import type { ConnectRouterOptions } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";

export type Compression = NonNullable<ConnectRouterOptions["acceptCompression"]>[number];

export const COMPRESSIONS: readonly Compression[] = [compressionGzip, compressionBrotli];

/**
 * Only big responses (long list pages) are compressed: a job is small, and
 * compressing every watch event once per stream costs more CPU than the
 * loopback or LAN bandwidth it saves.
 */
export const COMPRESS_MIN_BYTES = 64 * 1024;
