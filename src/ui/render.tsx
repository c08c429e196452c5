/** @jsxImportSource hono/jsx */
// Renders the dashboard's pages and fragments to strings (routes.ts is plain TypeScript).
import { DashboardPage, LoginPage, Panels } from "./components.tsx";
import type { DashboardModel } from "./model.ts";

const html = async (node: unknown): Promise<string> => String(await node);

export const renderDashboard = async (model: DashboardModel): Promise<string> => `<!DOCTYPE html>${await html(<DashboardPage model={model} />)}`;

export const renderLogin = async (props: { error?: string | null; disabled?: boolean }): Promise<string> => `<!DOCTYPE html>${await html(<LoginPage {...props} />)}`;

/** The live panels alone, for the client to swap in. */
export const renderPanels = (model: DashboardModel): Promise<string> => html(<Panels model={model} />);
