// A certificate authority and a localhost server certificate made for one test run (openssl CLI),
// for the TLS-only redis-server of the workerd tests. Synchronous: vitest.workers.config.ts must
// have the CA file before miniflare is loaded (it reads NODE_EXTRA_CA_CERTS once, at load time).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface TestCertificates {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(path.join(tmpdir(), "isthmus-tls-"));
  const f = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  try {
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f("ca.key"), "-out", f("ca.crt"), "-days", "2", "-subj", "/CN=isthmus workers test CA");
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f("server.key"), "-out", f("server.csr"), "-subj", "/CN=localhost");
    writeFileSync(f("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    openssl("x509", "-req", "-in", f("server.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f("server.crt"), "-days", "2", "-extfile", f("ext.cnf"));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not make test certificates with the openssl CLI (apt-get install openssl): ${(err as Error).message}`, { cause: err });
  }
  return { dir, caFile: f("ca.crt"), certFile: f("server.crt"), keyFile: f("server.key") };
}
