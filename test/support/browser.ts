// A real browser for the console's tests: Debian's Chromium (installed by
// scripts/browser-setup.sh, which `npm test` runs) driven by playwright-core,
// which downloads nothing. The network here is closed: the flags keep
// Chromium from reaching out (and flooding refused connections), and each
// launch gets a fresh temporary profile. Each test gets a context of its own,
// so no storage carries over between tests; every URL any page requests is
// recorded, for the check that no token ever appears in one.

import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Longest wait for anything to appear on screen. */
export const SCREEN_WAIT_MS = 10_000;

export interface TestBrowser {
  /** A page in a fresh context (its own storage) at 1280×800, or `viewport`. */
  newPage(viewport?: { width: number; height: number }): Promise<Page>;
  /** Every URL any page of this browser requested. */
  readonly requestedUrls: readonly string[];
  /** What pages reported as a Content-Security-Policy violation, an uncaught error, or a dialog (alert, confirm). */
  readonly incidents: readonly string[];
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30_000 });
  const contexts: BrowserContext[] = [];
  const requestedUrls: string[] = [];
  const incidents: string[] = [];
  return {
    requestedUrls,
    incidents,
    async newPage(viewport = { width: 1280, height: 800 }) {
      const context = await browser.newContext({ viewport });
      contexts.push(context);
      context.setDefaultTimeout(SCREEN_WAIT_MS);
      context.on("request", (request) => requestedUrls.push(request.url()));
      // Injected by the browser itself (CDP), so the page's own policy does not stop it.
      await context.addInitScript(RECORD_VIOLATIONS);
      const page = await context.newPage();
      page.on("pageerror", (error) => incidents.push(`page error: ${error.message}`));
      page.on("dialog", (dialog) => {
        incidents.push(`dialog: ${dialog.type()} ${dialog.message()}`);
        void dialog.dismiss();
      });
      page.on("console", (message) => {
        if (/Content.Security.Policy/i.test(message.text())) incidents.push(`console: ${message.text()}`);
      });
      return page;
    },
    async close() {
      for (const context of contexts) await context.close().catch(() => {});
      await browser.close();
    },
  };
}

// Page-side code is passed as text: these tests are type-checked against Node's globals, not the DOM's.
const RECORD_VIOLATIONS = `
  window.__violations = [];
  document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI));
`;

/** The policy violations the page saw since it loaded. */
export const violations = (page: Page): Promise<string[]> => page.evaluate("window.__violations");

/** Moves the page to another view of the console (#/jobs/<id>), as a link would. */
export const goTo = (page: Page, hash: string): Promise<unknown> => page.evaluate(`location.hash = ${JSON.stringify(hash)}`);

/** What the page keeps: sessionStorage's values, how many localStorage items, and document.cookie. */
export const kept = (page: Page): Promise<{ session: string[]; local: number; cookie: string }> =>
  page.evaluate("({ session: Object.values(sessionStorage), local: localStorage.length, cookie: document.cookie })");

/** Opens the console at `url` and signs in with `token`, as a person would: paste, then the button. */
export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** Signs in and waits until the jobs view follows WatchJobs. */
export async function signInLive(page: Page, url: string, token: string): Promise<void> {
  await signIn(page, url, token);
  await liveStatus(page).waitFor();
}

/** The status line of the view on screen, once it says "Live". */
export const liveStatus = (page: Page) => page.getByRole("status").filter({ hasText: /^Live$/ });

/** The jobs table's row of one job (its first cell holds the whole id). */
export const jobRow = (page: Page, jobId: string) => page.getByRole("row").filter({ has: page.getByRole("link", { name: jobId, exact: true }) });

/** A cell of a job's row, by the column's header. */
export async function cell(page: Page, jobId: string, column: string): Promise<string> {
  const headers = await page.getByRole("columnheader").allInnerTexts();
  const index = headers.findIndex((h) => h.toLowerCase() === column.toLowerCase());
  if (index < 0) throw new Error(`no column ${column} among ${headers.join(", ")}`);
  return jobRow(page, jobId).getByRole("cell").nth(index).innerText();
}
