// Where the dashboard lives: under /_isthmus like the rest of the gateway's own endpoints.
export const UI_BASE = "/_isthmus/ui";
