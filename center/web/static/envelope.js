// Opening a Trygg envelope in the browser (protocol/envelope.py, docs/protocol.md): a look-in
// picture sealed by the home to this staff member's X25519 key, signed by the home's Ed25519 key.
// The server only carries the sealed bytes; the picture exists in plain only here.
import { CipherSuite, DhkemX25519HkdfSha256, HkdfSha256, Chacha20Poly1305 } from "./vendor/hpke.js";

const SEAL_CTX = new TextEncoder().encode("trygg/v1 seal\0");
const SIGN_CTX = new TextEncoder().encode("trygg/v1 sign\0");
const HEADER_LEN = 10; // version, suite id, recipient key id (8)
const ENC_LEN = 32; // X25519 (suite 1); the hybrid suite 2 cannot be opened with a non-extractable key here
const SIG_LEN = 64;
const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Chacha20Poly1305() });

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};

export async function keyId(raw) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", raw)).slice(0, 8);
}

const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// Open and verify one envelope; returns the signed body's bytes, or throws saying why not.
// kemPair: this browser's X25519 CryptoKeyPair; signerRaw: the home's Ed25519 public key (raw).
export async function openSealed(data, topic, kemPair, signerRaw) {
  const bytes = new Uint8Array(data);
  const [version, suiteId] = bytes;
  if (version !== 2) throw new Error(`envelope version ${version} is not opened here`);
  if (suiteId !== 1) throw new Error("this envelope's suite (ML-KEM hybrid) cannot be opened in the browser");
  const header = bytes.slice(0, HEADER_LEN);
  const ourKid = await keyId(new Uint8Array(await crypto.subtle.exportKey("raw", kemPair.publicKey)));
  if (!equal(header.slice(2, 10), ourKid)) throw new Error("sealed to another key");
  const info = concat(SEAL_CTX, new TextEncoder().encode(topic), new Uint8Array([0]), header);
  const enc = bytes.slice(HEADER_LEN, HEADER_LEN + ENC_LEN);
  const plain = new Uint8Array(await suite.open({ recipientKey: kemPair, enc, info }, bytes.slice(HEADER_LEN + ENC_LEN)));
  const n = new DataView(plain.buffer).getUint32(0);
  if (4 + n > plain.length) throw new Error("malformed padding");
  if (plain.slice(4 + n).some((b) => b !== 0)) throw new Error("malformed padding: non-zero padding byte");
  const signed = plain.slice(4, 4 + n);
  const kid = signed.slice(0, 8), sig = signed.slice(8, 8 + SIG_LEN), body = signed.slice(8 + SIG_LEN);
  if (!equal(kid, await keyId(signerRaw))) throw new Error("not signed by this home's key");
  const signer = await crypto.subtle.importKey("raw", signerRaw, { name: "Ed25519" }, false, ["verify"]);
  const message = concat(SIGN_CTX, new TextEncoder().encode(topic), new Uint8Array([0]), body);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, signer, sig, message))) throw new Error("bad signature");
  return body;
}
