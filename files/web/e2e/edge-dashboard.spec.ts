import { expect, test } from '@playwright/test';

// A technician's first minute on the boat: open the dashboard, log in, see each GX live.
const user = process.env.OVR_WEB_USER ?? '';
const password = process.env.OVR_WEB_PASSWORD ?? '';
const system = process.env.OVR_WEB_SYSTEM ?? '';
const shots = `${process.env.OVR_WEB_ARTIFACTS ?? '../../build/web-tests'}/screenshots`;

test('log in and see the GX card with live values', async ({ page }, info) => {
  expect(user && password && system, 'OVR_WEB_USER, OVR_WEB_PASSWORD and OVR_WEB_SYSTEM must be set').toBeTruthy();
  const outside: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(new URL(info.project.use.baseURL ?? page.url()).origin)) outside.push(r.url());
  });

  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Log in to this node' })).toBeVisible();
  await page.screenshot({ path: `${shots}/${info.project.name}-login.png`, fullPage: true });

  // A wrong password is refused in words, and the form stays.
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong user name or password.');

  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();

  const card = page.getByTestId(`system-${system}`);
  await expect(card).toBeVisible();
  await expect(card.getByText(/^Live/)).toBeVisible();
  await expect(card.getByTestId('soc')).toHaveText(/^\d+ % (OK|low|critical)$/);
  await expect(card.getByTestId('voltage')).toHaveText(/^\d+\.\d V$/);
  await expect(card.getByTestId('pout')).toHaveText(/^-?\d+(\.\d)? k?W$/);
  await expect(card.getByTestId('mode')).toHaveText(/^(On|Off|Charger only|Inverter only)$/);
  await expect(page.getByTestId('summary')).toBeVisible();

  // Touch targets: every button is at least 44 px tall.
  for (const b of await page.getByRole('button').all()) {
    const box = await b.boundingBox();
    expect(box?.height ?? 0, `button ${await b.textContent()}`).toBeGreaterThanOrEqual(44);
  }
  // One column on a phone: the card spans the width.
  const cardBox = await card.boundingBox();
  expect(cardBox?.width ?? 0).toBeGreaterThan((page.viewportSize()?.width ?? 0) * 0.85);

  await page.screenshot({ path: `${shots}/${info.project.name}-dashboard.png`, fullPage: true });

  // The session survives a reload (cookie), and nothing was loaded from outside the node.
  await page.reload();
  await expect(card.getByTestId('soc')).toHaveText(/%/);
  expect(outside, 'requests outside the node').toEqual([]);
});
