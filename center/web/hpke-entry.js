// The HPKE pieces the console needs, bundled by `make` (esbuild) into static/vendor/hpke.js:
// a look-in picture is sealed to the staff member's own X25519 key and opened in the browser.
export { CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
export { Chacha20Poly1305 } from "@hpke/chacha20poly1305";
