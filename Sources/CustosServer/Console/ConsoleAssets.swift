// The console's one stylesheet and one same-origin script, served from /ui/static/ (the CSP allows nothing else).

enum ConsoleAssets {
    static let stylesheet = #"""
        :root { --fg: #1d2330; --muted: #667085; --line: #d0d5dd; --bg: #f7f8fa; --card: #fff;
          --good: #12733b; --goodbg: #dcf5e5; --warn: #8a5a00; --warnbg: #fff1c2; --bad: #a4161a; --badbg: #fde2e1;
          --none: #475467; --nonebg: #eaecf0; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
        header.top { display: flex; gap: 1.5em; align-items: center; padding: .6em 1.2em; background: #101828; color: #fff; }
        header.top a { color: #d0d5dd; text-decoration: none; margin-right: 1em; }
        header.top a.here { color: #fff; font-weight: 600; border-bottom: 2px solid #fff; }
        .brand { font-weight: 700; }
        nav { flex: 1; }
        form.signout { display: flex; gap: .6em; align-items: center; }
        .who { color: #d0d5dd; }
        main { padding: 1em 1.5em; max-width: 1200px; }
        h1 { font-size: 1.4em; margin: .3em 0 .6em; } h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
        .card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .8em 1em; margin: .5em 0; }
        .muted { color: var(--muted); }
        .mono, pre { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
        pre.json { background: var(--card); border: 1px solid var(--line); padding: .8em; overflow: auto; max-height: 28em; white-space: pre-wrap; }
        table.list { border-collapse: collapse; width: 100%; background: var(--card); }
        table.list th, table.list td { border-bottom: 1px solid var(--line); padding: .35em .5em; text-align: left; vertical-align: top; }
        table.list th { background: #f2f4f7; }
        tr.fail td { background: var(--badbg); }
        tr.first-failure td { background: #f9b4b0; font-weight: 600; }
        .tier { display: inline-block; padding: 0 .5em; border-radius: 3px; font-weight: 600; }
        .affirming, .allowed, .injected { color: var(--good); background: var(--goodbg); }
        .warning, .measured, .created { color: var(--warn); background: var(--warnbg); }
        .contraindicated, .denied { color: var(--bad); background: var(--badbg); }
        .none { color: var(--none); background: var(--nonebg); }
        .alert { padding: .6em .8em; border-radius: 4px; }
        .alert.bad, .bad { color: var(--bad); background: var(--badbg); }
        .good { color: var(--good); background: var(--goodbg); }
        .pending { color: var(--muted); }
        dl { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: .3em 0; }
        dt { color: var(--muted); } dd { margin: 0; }
        .big { font-size: 1.2em; }
        form.filters { display: flex; flex-wrap: wrap; gap: .6em; align-items: end; margin: .5em 0 1em; }
        form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
        input, select, button { font: inherit; padding: .25em .5em; }
        form.signin { display: flex; flex-direction: column; gap: .5em; max-width: 32em; }
        figure.chart { margin: 0; } figure.chart svg { width: 100%; height: auto; }
        .key { display: inline-block; width: .9em; height: .9em; margin: 0 .3em 0 1em; border-radius: 2px; }
        .key.affirming { background: #2e9e5b; } .key.warning { background: #e0a100; }
        .key.contraindicated { background: #d9453d; } .key.denied { background: #6b1a1a; }
        """#

    /// Checks, in the reviewer's browser, what the page claims: the entry's leaf hash (RFC 6962 over the exact
    /// bytes of the entry), its inclusion proof up to the checkpoint's root (RFC 9162 §2.1.3.2), the checkpoint's
    /// Ed25519 signature (C2SP signed note) against the log key from /.well-known/attestation-service, and a
    /// consistency proof (RFC 9162 §2.1.4.2) from the last checkpoint this browser saw (localStorage), under the key
    /// it saw then.
    static let script = #"""
        "use strict";
        (function () {
          const enc = new TextEncoder();
          function b64(text) { const s = atob(text); const out = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i); return out; }
          function toB64(bytes) { let s = ""; for (const b of bytes) s += String.fromCharCode(b); return btoa(s); }
          function hex(text) { if (text.length % 2 !== 0 || /[^0-9a-f]/.test(text)) throw new Error("bad hex"); const out = new Uint8Array(text.length / 2); for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16); return out; }
          function toHex(bytes) { return Array.from(bytes, b => b.toString(16).padStart(2, "0")).join(""); }
          function concat(...parts) { let n = 0; for (const p of parts) n += p.length; const out = new Uint8Array(n); let o = 0; for (const p of parts) { out.set(p, o); o += p.length; } return out; }
          function equal(a, b) { if (a.length !== b.length) return false; let d = 0; for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i]; return d === 0; }
          async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)); }
          const leafHash = bytes => sha256(concat(new Uint8Array([0]), bytes));
          const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));
          function say(element, cls, text) { if (!element) return; element.className = cls; element.textContent = text; }

          // C2SP signed note: text, a blank line, "— <name> <base64(keyID(4) || signature(64))>" lines.
          async function openNote(note, vkey) {
            // <name>+<hex8>+<base64std(0x01 || key)>: names have no "+", base64 may.
            const first = vkey.indexOf("+"), second = vkey.indexOf("+", first + 1);
            if (first <= 0 || second !== first + 9) throw new Error("the log key is malformed");
            const name = vkey.substring(0, first), idHex = vkey.substring(first + 1, second), keyB64 = vkey.substring(second + 1);
            const key = b64(keyB64);
            if (key.length !== 33 || key[0] !== 1) throw new Error("the log key is not an Ed25519 verifier key");
            const id = await sha256(concat(enc.encode(name), new Uint8Array([0x0a, 0x01]), key.subarray(1)));
            if (toHex(id.subarray(0, 4)) !== idHex) throw new Error("the log key's id does not match the key");
            const split = note.lastIndexOf("\n\n");
            if (split < 0) throw new Error("the checkpoint is not a signed note");
            const text = note.substring(0, split + 1);
            const publicKey = await crypto.subtle.importKey("raw", key.subarray(1), { name: "Ed25519" }, false, ["verify"]);
            for (const line of note.substring(split + 2).split("\n")) {
              if (!line.startsWith("\u2014 " + name + " ")) continue;
              const sig = b64(line.substring(name.length + 3));
              if (sig.length !== 68 || toHex(sig.subarray(0, 4)) !== idHex) continue;
              if (await crypto.subtle.verify({ name: "Ed25519" }, publicKey, sig.subarray(4), enc.encode(text))) {
                const lines = text.split("\n");
                if (lines.length < 4 || lines[0] !== name || !/^[0-9]+$/.test(lines[1])) throw new Error("the checkpoint body is malformed");
                const root = b64(lines[2]);
                if (root.length !== 32) throw new Error("the checkpoint root is not 32 bytes");
                return { origin: lines[0], size: Number(lines[1]), root: root };
              }
            }
            throw new Error("no valid signature of the log key on the checkpoint");
          }

          async function verifyInclusion(index, size, leaf, path, root) {
            if (index >= size) return false;
            let fn = index, sn = size - 1, r = leaf;
            for (const p of path) {
              if (sn === 0) return false;
              if (fn % 2 === 1 || fn === sn) {
                r = await nodeHash(p, r);
                if (fn % 2 === 0) { while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
              } else { r = await nodeHash(r, p); }
              fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
            }
            return sn === 0 && equal(r, root);
          }

          async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
            if (first === second) return proof.length === 0 && equal(firstRoot, secondRoot);
            if (first === 0) return proof.length === 0;
            if (first > second || proof.length === 0) return false;
            let path = proof.slice();
            if ((first & (first - 1)) === 0) path.unshift(firstRoot);
            let fn = first - 1, sn = second - 1;
            while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
            let fr = path[0], sr = path[0];
            for (const c of path.slice(1)) {
              if (sn === 0) return false;
              if (fn % 2 === 1 || fn === sn) {
                fr = await nodeHash(c, fr); sr = await nodeHash(c, sr);
                if (fn % 2 === 0) { while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
              } else { sr = await nodeHash(sr, c); }
              fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
            }
            return sn === 0 && equal(fr, firstRoot) && equal(sr, secondRoot);
          }

          async function logKey() {
            const response = await fetch("/.well-known/attestation-service", { credentials: "omit" });
            const doc = await response.json();
            if (!doc.audit || !doc.audit.verifier_key) throw new Error("the service publishes no log key");
            return doc.audit.verifier_key;
          }

          // The last checkpoint this browser saw, per log origin, with the key that signed it; only a verified newer
          // one under the same key replaces it. A key that changed is reported, never learned silently: the page's
          // proofs are then checked against a key the service chose now, which proves nothing about the log seen before.
          async function checkConsistency(checkpoint, key) {
            const out = document.getElementById("consistency");
            const storageKey = "custos.checkpoint." + checkpoint.origin;
            let last = null;
            try { last = JSON.parse(localStorage.getItem(storageKey) || "null"); } catch (e) { last = null; }
            const remember = () => localStorage.setItem(storageKey, JSON.stringify({ size: checkpoint.size, root: toB64(checkpoint.root), key: key }));
            if (!last || typeof last.size !== "number" || typeof last.root !== "string") {
              remember();
              say(out, "good", "First visit from this browser: checkpoint of size " + checkpoint.size + " and the log key remembered.");
              return;
            }
            if (typeof last.key === "string" && last.key !== key) {
              say(out, "alert bad", "Warning: the log key changed since your last visit (was " + last.key + ", now " + key + "): the proofs on this page are checked against the new key only.");
              return;
            }
            const lastRoot = b64(last.root);
            if (last.size > checkpoint.size) {
              say(out, "alert bad", "Warning: the log is smaller (" + checkpoint.size + ") than at your last visit (" + last.size + "): it was rewritten.");
              return;
            }
            let proof = [];
            if (last.size !== checkpoint.size && last.size !== 0) {
              const response = await fetch("/v1/audit/proofs/consistency?first=" + last.size + "&second=" + checkpoint.size, { credentials: "omit" });
              if (!response.ok) throw new Error("no consistency proof (" + response.status + ")");
              proof = (await response.json()).hashes.map(hex);
            }
            if (await verifyConsistency(last.size, checkpoint.size, lastRoot, checkpoint.root, proof)) {
              remember();
              say(out, "good", last.size === checkpoint.size
                ? "The log is as at your last visit (size " + checkpoint.size + ", the same root)."
                : "The log only grew since your last visit (size " + last.size + " \u2192 " + checkpoint.size + ", consistency proof verified in your browser).");
            } else {
              say(out, "alert bad", "Warning: the log is not consistent with the checkpoint you saw last (size " + last.size + "): it was rewritten.");
            }
          }

          async function run() {
            const proofElement = document.getElementById("proof");
            const holder = proofElement || document.getElementById("checkpoint");
            if (!holder) return;
            const status = document.getElementById("proof-status");
            if (!window.crypto || !window.crypto.subtle) {
              say(status, "alert bad", "Not verified: this browser offers WebCrypto only on HTTPS or localhost pages.");
              return;
            }
            let checkpoint, key;
            try {
              key = await logKey();
              checkpoint = await openNote(new TextDecoder().decode(b64(holder.dataset.note)), key);
            } catch (e) {
              say(status, "alert bad", "Not verified: " + e.message);
              say(document.getElementById("consistency"), "alert bad", "Not verified: " + e.message);
              return;
            }
            if (proofElement) {
              try {
                const index = Number(proofElement.dataset.index);
                const size = Number(proofElement.dataset.treeSize);
                if (size !== checkpoint.size) throw new Error("the proof is for another tree size than the signed checkpoint");
                const leaf = await leafHash(b64(proofElement.dataset.entry));
                const path = proofElement.dataset.proof ? proofElement.dataset.proof.split(",").map(hex) : [];
                if (await verifyInclusion(index, size, leaf, path, checkpoint.root)) {
                  say(status, "good", "Inclusion proof verified in your browser: entry #" + index + " hashes into the signed checkpoint of size " + size + ".");
                } else {
                  say(status, "alert bad", "Verification FAILED: entry #" + index + " is not in the signed log as shown (the entry or the log was changed).");
                }
              } catch (e) { say(status, "alert bad", "Verification FAILED: " + e.message); }
            }
            try { await checkConsistency(checkpoint, key); } catch (e) { say(document.getElementById("consistency"), "alert bad", "Warning: " + e.message); }
          }
          document.addEventListener("DOMContentLoaded", () => { run(); });
        })();
        """#
}
