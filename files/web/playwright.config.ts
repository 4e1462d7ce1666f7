import { defineConfig, devices } from '@playwright/test';

// Browser tests against a real edge (tests/molecule/edge/test_web.py runs them with OVR_WEB_URL
// and the scenario's operator). Debian's chromium, never a browser Playwright downloads.
// Screenshots and traces go to the project's build/ folder (git-ignored).
const out = process.env.OVR_WEB_ARTIFACTS ?? '../../build/web-tests';

export default defineConfig({
  testDir: './e2e',
  outputDir: `${out}/results`,
  timeout: 60_000,
  expect: { timeout: 20_000 },
  retries: 0,
  workers: 1,
  reporter: [['list']],
  use: {
    baseURL: process.env.OVR_WEB_URL,
    // The edge's certificate comes from the fleet's dashboard CA, which a phone installs once
    // (docs/adr/0015); the pytest side checks the chain and names with that CA.
    ignoreHTTPSErrors: true,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.OVR_CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  projects: [
    { name: 'phone', use: { ...devices['Pixel 7'] } },
  ],
});
