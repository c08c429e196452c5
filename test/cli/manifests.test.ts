// The onboarding kit: every manifest in infra/kubernetes parses (all documents) with known kinds and
// API versions and refers consistently to itself; the route of docs/onboarding.md is a valid apply file.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { parseApplyDocument } from "../../src/cli/apply.ts";
import { ROOT } from "./helpers.ts";

const KINDS: Record<string, string> = {
  ServiceAccount: "v1",
  Service: "v1",
  Deployment: "apps/v1",
  Ingress: "networking.k8s.io/v1",
  Server: "policy.linkerd.io/v1beta3",
  AuthorizationPolicy: "policy.linkerd.io/v1alpha1",
  MeshTLSAuthentication: "policy.linkerd.io/v1alpha1",
  NetworkAuthentication: "policy.linkerd.io/v1alpha1",
};

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
  [k: string]: unknown;
}

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await yamlFiles(p)));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

async function load(): Promise<Array<Manifest & { file: string }>> {
  const docs: Array<Manifest & { file: string }> = [];
  for (const file of await yamlFiles(path.join(ROOT, "infra/kubernetes"))) {
    for (const doc of parseAllDocuments(await readFile(file, "utf8"))) {
      expect(doc.errors, `${file}: ${doc.errors.map((e) => e.message).join("; ")}`).toEqual([]);
      const value = doc.toJS() as Manifest | null;
      if (value !== null) docs.push({ ...value, file: path.relative(ROOT, file) });
    }
  }
  return docs;
}

const find = (docs: Manifest[], kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name);

describe("infra/kubernetes", () => {
  it("every document has a known kind with its API version, a name and a namespace", async () => {
    const docs = await load();
    expect(docs.length).toBeGreaterThanOrEqual(10);
    for (const d of docs) {
      expect(KINDS[d.kind], `${d.file}: unexpected kind ${d.kind}`).toBeDefined();
      expect(d.apiVersion, `${d.file}: ${d.kind} ${d.metadata?.name}`).toBe(KINDS[d.kind]);
      expect(d.metadata?.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(d.metadata?.namespace).toBe("shop");
    }
    expect(new Set(docs.map((d) => d.kind))).toEqual(new Set(Object.keys(KINDS)));
  });

  it("the caller mounts a short-lived projected token for the audience isthmus, and names its remote service", async () => {
    const docs = await load();
    const deploy = find(docs, "Deployment", "web") as Manifest;
    const pod = (deploy.spec as { template: { spec: Record<string, unknown> } }).template.spec as {
      serviceAccountName: string;
      automountServiceAccountToken: boolean;
      containers: Array<{ env: Array<{ name: string; value: string }>; volumeMounts: Array<{ name: string; mountPath: string }> }>;
      volumes: Array<{ name: string; projected?: { sources: Array<{ serviceAccountToken?: { audience: string; expirationSeconds: number; path: string } }> } }>;
    };
    expect(find(docs, "ServiceAccount", pod.serviceAccountName)).toBeDefined();
    expect(pod.automountServiceAccountToken).toBe(false);
    const volume = pod.volumes.find((v) => v.projected);
    const sat = volume?.projected?.sources.find((s) => s.serviceAccountToken)?.serviceAccountToken;
    expect(sat?.audience).toBe("isthmus");
    expect(sat?.expirationSeconds).toBeGreaterThanOrEqual(600); // the API server's minimum
    expect(sat?.expirationSeconds).toBeLessThanOrEqual(3600);
    const container = pod.containers[0] as (typeof pod.containers)[number];
    const mount = container.volumeMounts.find((m) => m.name === volume?.name);
    const tokenFile = container.env.find((e) => e.name === "ISTHMUS_TOKEN_FILE")?.value;
    expect(tokenFile).toBe(`${mount?.mountPath}/${sat?.path}`);

    // The URL the workload calls is an ExternalName Service pointing at a bare host name.
    const url = new URL(container.env.find((e) => e.name === "CHECKOUT_URL")?.value ?? "");
    const [svcName, ns] = url.hostname.split(".");
    const svc = find(docs, "Service", svcName ?? "") as Manifest;
    expect(svc.metadata.namespace).toBe(ns);
    const spec = svc.spec as { type: string; externalName: string; ports: Array<{ port: number }> };
    expect(spec.type).toBe("ExternalName");
    expect(spec.externalName).toMatch(/^[a-z0-9.-]+$/);
    expect(spec.ports.map((p) => p.port)).toContain(Number(url.port));
  });

  it("the destination's Linkerd policies target the Server and authentications that exist", async () => {
    const docs = await load();
    const policies = docs.filter((d) => d.kind === "AuthorizationPolicy");
    expect(policies.length).toBeGreaterThanOrEqual(1);
    for (const p of policies) {
      const spec = p.spec as { targetRef: { group: string; kind: string; name: string }; requiredAuthenticationRefs: Array<{ group: string; kind: string; name: string }> };
      expect(spec.targetRef.group).toBe("policy.linkerd.io");
      expect(find(docs, spec.targetRef.kind, spec.targetRef.name), `${p.metadata.name} -> ${spec.targetRef.kind}/${spec.targetRef.name}`).toBeDefined();
      expect(spec.requiredAuthenticationRefs.length).toBeGreaterThanOrEqual(1);
      for (const ref of spec.requiredAuthenticationRefs) expect(find(docs, ref.kind, ref.name), `${p.metadata.name} -> ${ref.kind}/${ref.name}`).toBeDefined();
    }
    const server = docs.find((d) => d.kind === "Server") as Manifest;
    expect((server.spec as { podSelector: { matchLabels: Record<string, string> } }).podSelector.matchLabels).toEqual({ app: "checkout" });
    const mtls = docs.find((d) => d.kind === "MeshTLSAuthentication") as Manifest;
    expect((mtls.spec as { identityRefs: Array<{ kind: string }> }).identityRefs[0]?.kind).toBe("ServiceAccount");
    const net = docs.find((d) => d.kind === "NetworkAuthentication") as Manifest;
    for (const n of (net.spec as { networks: Array<{ cidr: string }> }).networks) expect(n.cidr).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
  });

  it("the ingress routes the Host the gateway sends for the onboarding route's backend", async () => {
    const docs = await load();
    const ingress = docs.find((d) => d.kind === "Ingress") as Manifest;
    const hosts = (ingress.spec as { rules: Array<{ host: string }> }).rules.map((r) => r.host);
    const route = (await onboardingResources()).find((r) => r.kind === "route" && r.name === "checkout");
    const backend = (route?.desired as { rules: Array<{ backendRefs: Array<{ service: string }> }> }).rules[0]?.backendRefs[0];
    expect(hosts).toContain(backend?.service);
  });
});

/** The `# shop.yaml` block of docs/onboarding.md, parsed as `isthmus apply` parses a file. */
async function onboardingResources() {
  const text = await readFile(path.join(ROOT, "docs/onboarding.md"), "utf8");
  const block = /```yaml\n# shop\.yaml\n([\s\S]*?)```/.exec(text)?.[1];
  expect(block, "docs/onboarding.md has a ```yaml block starting with # shop.yaml").toBeDefined();
  return parseApplyDocument(parseAllDocuments(block ?? "")[0]?.toJS());
}

describe("docs/onboarding.md", () => {
  it("its route is a valid apply file whose hostnames are the ExternalName's names", async () => {
    const [route] = await onboardingResources();
    expect(route?.kind).toBe("route");
    const docs = await load();
    const svc = find(docs, "Service", "checkout-remote") as Manifest;
    const names = [svc.metadata.name, `${svc.metadata.name}.${svc.metadata.namespace}`, `${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local`];
    expect((route?.desired as { hostnames: string[] }).hostnames).toEqual(names);
  });
});
