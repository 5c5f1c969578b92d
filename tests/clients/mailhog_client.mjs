// Drives the npm `mailhog` client, unmodified, against a sandbox's HTTP API (MailHog's v2
// endpoints). Usage: node mailhog_client.mjs 127.0.0.1 PORT
import mailhogModule from "mailhog";

const mailhog = mailhogModule({ host: process.argv[2], port: Number(process.argv[3]) });
const item = (m) => m && {
  ID: m.ID, subject: m.subject, from: m.from, to: m.to, text: m.text, html: m.html,
  attachments: (m.attachments || []).map((a) => ({ name: a.name, type: a.type })),
};
const out = {};
const all = await mailhog.messages(0, 10);
out.total = all.total;
out.count = all.count;
out.items = all.items.map(item);
out.latestTo = item(await mailhog.latestTo("larry@beta.test"));
out.latestFrom = item(await mailhog.latestFrom("ann@alpha.test"));
out.latestContaining = item(await mailhog.latestContaining("Quarterly"));
out.search = (await mailhog.search("larry@beta.test", "to")).count;
await mailhog.deleteMessage(out.latestTo.ID);
out.afterDelete = (await mailhog.messages()).total;
await mailhog.deleteAll();
out.afterDeleteAll = (await mailhog.messages()).total;
console.log(JSON.stringify(out));
