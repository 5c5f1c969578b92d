// Drives the npm `mailpit-api` client, unmodified, against a sandbox's HTTP API.
// Usage: node mailpit_client.mjs http://127.0.0.1:PORT
// Prints one JSON object with what each call returned, for tests/http/test_real_clients.py.
import { MailpitClient } from "mailpit-api";

const mailpit = new MailpitClient(process.argv[2]);
const out = {};

out.cleared = await mailpit.deleteMessages();
out.sent = await mailpit.sendMessage({
  From: { Email: "ann@alpha.test", Name: "Ann" },
  To: [{ Email: "larry@beta.test", Name: "Larry" }],
  Subject: "From node",
  Text: "hello from node",
  HTML: "<p>hello from <b>node</b></p>",
  Attachments: [
    { Content: Buffer.from("a,b\n1,2\n").toString("base64"), Filename: "data.csv", ContentType: "text/csv" },
  ],
  Tags: ["node"],
});
const found = await mailpit.waitForMessage(
  { query: 'to:larry@beta.test subject:"From node"' },
  { timeout: 10000, interval: 100 },
);
const id = found.ID;
out.found = found;
out.list = await mailpit.listMessages(0, 10);
out.search = await mailpit.searchMessages({ query: 'subject:"From node" has:attachment' });
out.summary = await mailpit.getMessageSummary(id);
out.headers = await mailpit.getMessageHeaders(id);
out.raw = await mailpit.getMessageSource(id);
const part = out.summary.Attachments[0].PartID;
const blob = await mailpit.getMessageAttachment(id, part);
out.part = { type: blob.type, text: await blob.text() };
out.unread = await mailpit.setReadStatus({ IDs: [id], Read: false });
out.afterUnread = (await mailpit.searchMessages({ query: "is:unread" })).messages.map((m) => m.ID);
await mailpit.setReadStatus({ IDs: [id], Read: true });
out.afterRead = (await mailpit.searchMessages({ query: "is:read" })).messages.map((m) => m.ID);
out.setTags = await mailpit.setTags({ IDs: [id], Tags: ["alpha", "beta"] });
out.tags = await mailpit.getTags();
await mailpit.renameTag("alpha", "gamma");
await mailpit.deleteTag("beta");
out.tagsAfter = (await mailpit.getMessageSummary(id)).Tags;
out.html = await mailpit.renderMessageHTML(id);
out.text = await mailpit.renderMessageText(id);
out.info = await mailpit.getInfo();
out.webui = await mailpit.getConfiguration();
out.released = await mailpit.releaseMessage(id, { To: ["moe@gamma.test"] });
// The sender's Sent copy is stored at once, moe's own copy after the relay's hop.
const released = await mailpit.waitForMessages(
  { query: "to:moe@gamma.test", count: 2 },
  { timeout: 10000, interval: 100 },
);
out.releasedCopy = await mailpit.getMessageSummary(released.messages[0].ID);
out.deletedBySearch = await mailpit.deleteMessagesBySearch({ query: "to:moe@gamma.test" });
out.afterSearchDelete = (await mailpit.searchMessages({ query: "to:moe@gamma.test" })).messages_count;
out.deleted = await mailpit.deleteMessages({ IDs: [id] });
out.afterDelete = (await mailpit.listMessages()).messages.map((m) => m.ID);
try {
  await mailpit.getMessageSummary("999999");
  out.missing = "no error";
} catch (error) {
  out.missing = String(error.message);
}
console.log(JSON.stringify(out));
