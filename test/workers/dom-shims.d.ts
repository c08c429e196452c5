// WebCrypto parameter names the shared test helpers (test/helpers/identity.ts) take from the DOM
// lib, which the Workers typecheck (tsconfig.workers.json) does not load.
type AlgorithmIdentifier = string | { name: string };
interface EcdsaParams {
  name: string;
  hash: string | { name: string };
}
interface RsaPssParams {
  name: string;
  saltLength: number;
}
