// test_console.js - the web console in a real browser (ctest label console):
// Debian's chromium driven by playwright-core against a live ringmq-server.
//   node test_console.js SERVER_BINARY OUT_DIR
// Checks that a created topic appears with its rate and subscriber count,
// that the rate chart moves while a publisher runs, paging and filtering
// with 100,000 topics, that a user without admin rights sees no admin
// action, and that an admin's delete goes through the confirmation. Saves
// screenshots into OUT_DIR. Exits 0 (pass), 1 (fail), 77 (skip: chromium
// cannot start here). Bounded: gives up after 75 s, times
// RINGMQ_TEST_TIME_SCALE (ctest sets it: > 1 for a sanitized server).
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");

const [bin, outDir] = process.argv.slice(2);
const SKIP = 77;
// How many times slower than a plain build the server is (TSan: 5).
const SCALE = Math.max(1, Number(process.env.RINGMQ_TEST_TIME_SCALE) || 1);
let server = null, browser = null, tmp = null;

function cleanup() {
	if (server && server.exitCode === null) server.kill("SIGKILL");
	if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}
const deadline = setTimeout(() => {
	console.log(`FAIL the browser test took over ${75 * SCALE} s`);
	cleanup();
	process.exit(1);
}, 75000 * SCALE);

function freePort() {
	return new Promise((res, rej) => {
		const s = net.createServer();
		s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
		s.on("error", rej);
	});
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A RESP connection: send() pipelines commands, replies() waits for n.
function resp(port) {
	return new Promise((res, rej) => {
		const sock = net.connect(port, "127.0.0.1");
		let buf = "", got = 0, waiters = [];
		sock.setEncoding("latin1");
		sock.on("data", (d) => {
			buf += d;
			// count complete simple replies (+, -, :) and skip pushes/bulk
			let i;
			while ((i = buf.indexOf("\r\n")) >= 0) {
				const line = buf.slice(0, i);
				buf = buf.slice(i + 2);
				if ("+-:".includes(line[0])) got++;
				if (line[0] === "-") console.log("server said " + line);
			}
			waiters = waiters.filter((w) => (got >= w.n ? (w.res(), false) : true));
		});
		const enc = (args) => `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join("");
		sock.on("connect", () => res({
			sock,
			send(...cmds) { sock.write(cmds.map(enc).join("")); },
			sendRaw(s) { sock.write(s); },
			enc,
			replies(n) { const target = got + n; return new Promise((r) => (got >= target ? r() : waiters.push({ n: target, res: r }))); },
			total() { return got; },
		}));
		sock.on("error", rej);
	});
}

async function api(mport, p, auth) {
	const r = await fetch(`http://127.0.0.1:${mport}/api/v1/${p}`, { headers: auth ? { Authorization: "Basic " + Buffer.from(auth).toString("base64") } : {} });
	return r.json();
}

async function until(what, fn, ms) {
	const end = Date.now() + ms * SCALE;
	let last;
	while (Date.now() < end) {
		try { if ((last = await fn())) return last; } catch (e) { last = e.message; }
		await sleep(200);
	}
	throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

async function main() {
	let pw;
	try { pw = require("playwright-core"); } catch (e) { console.log("FAIL playwright-core is not installed: " + e.message); return 1; }
	const exe = process.env.CHROMIUM || "/usr/bin/chromium";
	try {
		browser = await pw.chromium.launch({ executablePath: exe, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"], timeout: 20000 });
	} catch (e) {
		console.log(`SKIP chromium (${exe}) cannot start here: ${e.message.split("\n")[0]}`);
		return SKIP;
	}
	fs.mkdirSync(outDir, { recursive: true });
	const shot = async (page, name) => {
		const f = path.join(outDir, name);
		await page.screenshot({ path: f });
		console.log("screenshot " + f);
	};

	const port = await freePort(), mport = await freePort();
	tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ringmq-console-"));
	server = spawn(bin, ["--port", port, "--metrics-port", mport, "--dir", tmp, "--storage", "memory", "--threads", "2"], { stdio: ["ignore", "ignore", "inherit"] });
	await until("the server", async () => (await fetch(`http://127.0.0.1:${mport}/healthz`)).ok, 10000);

	const c = await resp(port);
	c.send(["ACL", "SETUSER", "viewer", "on", ">vpass", "+info", "+topics", "+subscribe", "&*"],
		["CREATE", "orders"], ["CREATE", "doomed"]);
	await c.replies(3);
	const sub = await resp(port);
	sub.send(["SUBSCRIBE", "orders"]);
	// 100,000 topics, pipelined in chunks
	const t0 = Date.now();
	for (let k = 0; k < 10; k++) {
		let s = "";
		for (let i = 0; i < 10000; i++) s += c.enc(["CREATE", "bulk." + String(k * 10000 + i).padStart(6, "0"), "CAPACITY", "65536"]);
		c.sendRaw(s);
		await c.replies(10000);
	}
	console.log(`created 100,000 topics in ${Date.now() - t0} ms`);
	// a publisher: 100 messages every 100 ms
	const pub = await resp(port);
	let n = 0;
	const publisher = setInterval(() => {
		const cmds = [];
		for (let i = 0; i < 100; i++) cmds.push(["PUBLISH", "orders", `order ${n++} {"qty": ${i}}`]);
		pub.send(...cmds);
	}, 100);

	const url = `http://127.0.0.1:${mport}/`;
	const admin = await browser.newContext({ viewport: { width: 1280, height: 860 } });
	const page = await admin.newPage();
	await page.goto(url);
	// the chart moves while the publisher runs
	await until("the rate chart to move", async () => {
		const last = await page.getAttribute("#ch-msgs", "data-last");
		return last && +last > 0;
	}, 15000);
	await until("orders among the busiest topics", async () => (await page.locator("#top a[data-topic=orders]").count()) === 1, 20000);
	await shot(page, "console-overview.png");
	if (process.env.CONSOLE_DOCS_SHOT) await page.screenshot({ path: process.env.CONSOLE_DOCS_SHOT });

	// topics: the created topic with its rate and subscriber count
	await page.click("button[data-view=topics]");
	await page.fill("#t-filter", "orders");
	await until("orders in the topics table with a rate", async () => {
		const row = page.locator('#t-body tr[data-name="orders"]');
		if ((await row.count()) !== 1) return false;
		const rate = await row.locator("td[data-col=rate]").innerText();
		const subs = await row.locator("td[data-col=subs]").innerText();
		return parseFloat(rate) > 0 && subs.trim() === "1 / 0";
	}, 15000);
	// paging and filtering with 100,000 topics
	await page.fill("#t-filter", "");
	await until("the unfiltered count", async () => /^1–50 of 100\.0k/.test(await page.innerText("#t-info")), 10000);
	await page.click("#t-next");
	await until("page 2", async () => /^51–100 of 100\.0k/.test(await page.innerText("#t-info")), 10000);
	const first2 = await page.getAttribute("#t-body tr:first-child", "data-name");
	if (first2 !== "bulk.000050") throw new Error("page 2 starts with " + first2);
	await page.fill("#t-filter", "bulk.0420");
	await until("the filtered count", async () => /^1–50 of 100 /.test(await page.innerText("#t-info")), 10000);
	await page.click("#t-next");
	await until("the filtered page 2", async () => /^51–100 of 100 /.test(await page.innerText("#t-info")), 10000);
	await shot(page, "console-topics.png");
	// sort by rate: orders first
	await page.fill("#t-filter", "");
	await page.click("button[data-sort=rate]");
	await until("orders first by rate", async () => (await page.getAttribute("#t-body tr:first-child", "data-name")) === "orders", 10000);

	// topic detail, as an admin: messages and the delete button
	await page.click('#t-body a[data-topic="orders"]');
	await until("the messages of orders", async () => (await page.locator("#d-msgs pre.msg").count()) > 0, 10000);
	if (!(await page.isVisible("#d-delete"))) throw new Error("an admin sees no delete button");
	await shot(page, "console-topic.png");
	// an admin's delete goes through the confirmation
	await page.evaluate(() => { window.location.hash = ""; });
	await page.click("button[data-view=topics]");
	await page.fill("#t-filter", "doomed");
	await until("doomed", async () => (await page.locator('#t-body a[data-topic="doomed"]').count()) === 1, 10000);
	await page.click('#t-body a[data-topic="doomed"]');
	await page.waitForSelector("#d-delete:visible");
	await page.click("#d-delete");
	await page.waitForSelector("#confirm[open]");
	if (!(await page.isDisabled("#cf-ok"))) throw new Error("confirm is enabled before typing the name");
	await page.fill("#cf-input", "doomed");
	await page.click("#cf-ok");
	await until("doomed deleted", async () => (await api(mport, "topic?name=doomed")).status === 404, 10000);
	// clients: an admin may disconnect
	await page.click("button[data-view=clients]");
	await until("the clients table", async () => (await page.locator("#c-body button[data-kill]:visible").count()) >= 2, 10000);
	await shot(page, "console-clients.png");

	// a user without admin rights sees no admin action
	const view = await browser.newContext({
		// from this host with the default user open, nothing challenges the
		// browser: send the viewer's credentials with every request
		extraHTTPHeaders: { Authorization: "Basic " + Buffer.from("viewer:vpass").toString("base64") },
		viewport: { width: 1280, height: 860 } });
	const vp = await view.newPage();
	await vp.goto(url);
	await until("the viewer's name", async () => (await vp.innerText("#who")).includes("viewer"), 10000);
	await vp.click("button[data-view=topics]");
	await vp.fill("#t-filter", "orders");
	await until("orders for the viewer", async () => (await vp.locator('#t-body a[data-topic="orders"]').count()) === 1, 10000);
	await vp.click('#t-body a[data-topic="orders"]');
	await until("the viewer's topic page", async () => (await vp.locator("#d-msgs pre.msg").count()) > 0, 10000);
	if (await vp.isVisible("#d-delete")) throw new Error("the viewer sees the delete button");
	await vp.click("button[data-view=clients]");
	await sleep(1500);
	const kills = await vp.locator("#c-body button[data-kill]:visible").count();
	if (kills !== 0) throw new Error(`the viewer sees ${kills} disconnect buttons`);
	await shot(vp, "console-viewer.png");

	clearInterval(publisher);
	for (const s of [c, sub, pub]) s.sock.destroy();
	await browser.close();
	browser = null;
	server.kill("SIGTERM");
	await new Promise((r) => (server.exitCode !== null ? r() : server.on("exit", r)));
	if (server.exitCode !== 0 && server.signalCode === null) throw new Error("server exit status " + server.exitCode);
	console.log("PASS the console in chromium: topic, rate, chart, paging and filter with 100,000 topics, admin and viewer");
	return 0;
}

main().then((code) => {
	clearTimeout(deadline);
	cleanup();
	process.exit(code);
}, async (e) => {
	console.log("FAIL " + (e && e.stack || e));
	try { if (browser) await browser.close(); } catch (x) { /* closing */ }
	clearTimeout(deadline);
	cleanup();
	process.exit(1);
});
