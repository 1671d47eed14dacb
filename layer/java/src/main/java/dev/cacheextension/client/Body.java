package dev.cacheextension.client;

/**
 * A value as the extension serves it: bytes, and whether they are binary (application/octet-stream). Never handed
 * to a caller: every read decodes or copies it, so what a client keeps cannot be changed through a result.
 */
final class Body {
    final byte[] bytes;
    final boolean binary;
    /** An offline JSON value (not a string): its JSON text, which Transform.BINARY refuses. */
    final boolean json;

    Body(byte[] bytes, boolean binary) {
        this(bytes, binary, false);
    }

    Body(byte[] bytes, boolean binary, boolean json) {
        this.bytes = bytes;
        this.binary = binary;
        this.json = json;
    }
}
