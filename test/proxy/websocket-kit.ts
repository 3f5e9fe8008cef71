// Just enough of RFC 6455 for tests (no ws package here): the handshake, and text/close frames up to
// 64 KiB, masked from the client as the RFC requires. An echo server with raw `upgrade` handling and a
// client over a plain TCP socket.

import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OPCODE_TEXT = 0x1;
const OPCODE_CLOSE = 0x8;

export function acceptKey(key: string): string {
  return createHash("sha1")
    .update(key + GUID)
    .digest("base64");
}

export function encodeFrame(opcode: number, payload: Buffer, masked: boolean): Buffer {
  if (payload.length > 0xffff) throw new RangeError("encodeFrame: test frames stay under 64 KiB");
  const lengthBytes = payload.length < 126 ? 0 : 2;
  const header = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0));
  header[0] = 0x80 | opcode;
  header[1] = (masked ? 0x80 : 0) | (lengthBytes === 0 ? payload.length : 126);
  if (lengthBytes === 2) header.writeUInt16BE(payload.length, 2);
  const body = Buffer.from(payload);
  if (masked) {
    const mask = randomBytes(4);
    mask.copy(header, 2 + lengthBytes);
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  }
  return Buffer.concat([header, body]);
}

export interface Frame {
  readonly opcode: number;
  readonly payload: Buffer;
}

/** Splits a byte stream into frames; `push` returns the frames completed by the new bytes. */
export class FrameDecoder {
  #buffer = Buffer.alloc(0);

  push(bytes: Buffer): Frame[] {
    this.#buffer = Buffer.concat([this.#buffer, bytes]);
    const frames: Frame[] = [];
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) break;
      const masked = (b[1] & 0x80) !== 0;
      let length = b[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) break;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        throw new Error("FrameDecoder: 64-bit lengths are not used in these tests");
      }
      const maskOffset = offset;
      if (masked) offset += 4;
      if (b.length < offset + length) break;
      const payload = Buffer.from(b.subarray(offset, offset + length));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= b[maskOffset + (i & 3)];
      frames.push({ opcode: b[0] & 0x0f, payload });
      this.#buffer = b.subarray(offset + length);
    }
    return frames;
  }
}

export interface EchoServer {
  readonly server: http.Server;
  readonly address: AddressInfo;
  /** Upgrade requests seen: path and headers. */
  readonly upgrades: Array<{ url: string; headers: http.IncomingHttpHeaders }>;
  /** Sockets currently open. */
  readonly open: Set<Duplex>;
}

/**
 * A WebSocket echo server: answers each text frame with "<tag>: <text>", closes on a close frame.
 * Upgrades on /refuse get a 403 with a body. Plain requests get "plain <tag>".
 */
export async function startEchoServer(tag: string): Promise<EchoServer> {
  const upgrades: EchoServer["upgrades"] = [];
  const open = new Set<Duplex>();
  const server = http.createServer((_req, res) => res.end(`plain ${tag}`));
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) => {
    upgrades.push({ url: req.url ?? "", headers: req.headers });
    socket.on("error", () => undefined);
    if (req.url === "/refuse") {
      socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nno, ta.");
      return;
    }
    const key = req.headers["sec-websocket-key"];
    if (req.headers.upgrade?.toLowerCase() !== "websocket" || typeof key !== "string") {
      socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    open.add(socket);
    socket.once("close", () => open.delete(socket));
    // Sockets of an http.Server allow half-open connections: end ours when the peer ends its side.
    socket.once("end", () => socket.end());
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${acceptKey(key)}\r\nX-Echo-Tag: ${tag}\r\n\r\n`,
    );
    const decoder = new FrameDecoder();
    socket.on("data", (bytes: Buffer) => {
      for (const frame of decoder.push(bytes)) {
        if (frame.opcode === OPCODE_TEXT) {
          socket.write(
            encodeFrame(OPCODE_TEXT, Buffer.from(`${tag}: ${frame.payload.toString("utf8")}`), false),
          );
        } else if (frame.opcode === OPCODE_CLOSE) {
          socket.end(encodeFrame(OPCODE_CLOSE, frame.payload, false));
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, address: server.address() as AddressInfo, upgrades, open };
}

export interface WebSocketClient {
  /** Status line and headers of the handshake answer. */
  readonly status: number;
  readonly headers: Record<string, string>;
  /** The body when the upgrade was refused. */
  readonly refusalBody: string;
  sendText(text: string): void;
  /** The next text frame from the server. */
  receiveText(timeoutMs?: number): Promise<string>;
  /** Sends a close frame and resolves when the connection is closed. */
  close(): Promise<void>;
  readonly socket: net.Socket;
}

/** Opens a WebSocket to `http://host:port` + `path`; resolves after the handshake answer (101 or not). */
export async function openWebSocket(
  baseUrl: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<WebSocketClient> {
  const url = new URL(baseUrl);
  const socket = net.connect(Number(url.port), url.hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const key = randomBytes(16).toString("base64");
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
  );
  let buffered = Buffer.alloc(0);
  const headEnd = await new Promise<number>((resolve, reject) => {
    const onData = (bytes: Buffer): void => {
      buffered = Buffer.concat([buffered, bytes]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end >= 0) {
        socket.off("data", onData);
        resolve(end);
      }
    };
    socket.on("data", onData);
    socket.once("error", reject);
    socket.once("end", () =>
      reject(new Error(`connection ended during the handshake: ${buffered.toString()}`)),
    );
  });
  const lines = buffered.subarray(0, headEnd).toString("latin1").split("\r\n");
  const status = Number(lines[0].split(" ")[1]);
  const answerHeaders: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    answerHeaders[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = buffered.subarray(headEnd + 4);
  if (status === 101 && answerHeaders["sec-websocket-accept"] !== acceptKey(key)) {
    throw new Error("openWebSocket: wrong Sec-WebSocket-Accept");
  }
  let refusalBody = "";
  if (status !== 101) {
    refusalBody = await new Promise<string>((resolve) => {
      const chunks: Buffer[] = [rest];
      socket.on("data", (c: Buffer) => chunks.push(c));
      socket.once("close", () => resolve(Buffer.concat(chunks).toString("utf8")));
    });
  }
  const decoder = new FrameDecoder();
  const texts: string[] = [];
  const waiters: Array<(text: string) => void> = [];
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const onFrames = (bytes: Buffer): void => {
    for (const frame of decoder.push(bytes)) {
      if (frame.opcode !== OPCODE_TEXT) continue;
      const text = frame.payload.toString("utf8");
      const waiter = waiters.shift();
      if (waiter !== undefined) waiter(text);
      else texts.push(text);
    }
  };
  if (status === 101) {
    socket.on("data", onFrames);
    if (rest.length > 0) onFrames(rest);
  }
  return {
    status,
    headers: answerHeaders,
    refusalBody,
    socket,
    sendText: (text) => socket.write(encodeFrame(OPCODE_TEXT, Buffer.from(text), true)),
    receiveText: (timeoutMs = 5000) => {
      const queued = texts.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no WebSocket message within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push((text) => {
          clearTimeout(timer);
          resolve(text);
        });
      });
    },
    close: async () => {
      if (!socket.destroyed) socket.write(encodeFrame(OPCODE_CLOSE, Buffer.from([0x03, 0xe8]), true));
      await closed;
    },
  };
}
