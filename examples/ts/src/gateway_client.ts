// The cascade-router gateway from TypeScript: the official `openai` client, pointed at the gateway.
//
//   CASCADE_GATEWAY_URL=http://127.0.0.1:8000/v1 CASCADE_GATEWAY_KEY=csk-... node dist/gateway_client.js plain
//
// Scenarios: plain | stream | tools | error. Each prints one JSON line of what the client saw, so the
// Python suite can check it (tests/test_gateway_typescript.py).
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.CASCADE_GATEWAY_URL ?? "http://127.0.0.1:8000/v1",
  apiKey: process.env.CASCADE_GATEWAY_KEY ?? "unused",
  maxRetries: 0,
});
const model = process.env.CASCADE_MODEL ?? "cascade/tickets";
const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
  { role: "user", content: "Classify: my card was charged twice" },
];

// A plain request: `model` is the rung model that answered; the headers and the `cascade` field
// say which rung, what it cost and how many escalations it took.
async function plain(): Promise<object> {
  const { data, response } = await client.chat.completions.create({ model, messages }).withResponse();
  const account = (data as unknown as { cascade: { attempts: { rung: string; outcome: string }[] } }).cascade;
  return {
    model: data.model,
    content: data.choices[0].message.content,
    answeredBy: response.headers.get("x-cascade-answered-by"),
    escalations: response.headers.get("x-cascade-escalations"),
    costUsd: Number(response.headers.get("x-cascade-cost-usd")),
    attempts: account.attempts.map((a) => `${a.rung}:${a.outcome}`),
  };
}

// A streamed request: the chunks carry only the accepted answer, never a rejected draft.
async function stream(): Promise<object> {
  const chunks = await client.chat.completions.create({ model, messages, stream: true });
  const deltas: string[] = [];
  const models = new Set<string>();
  for await (const chunk of chunks) {
    models.add(chunk.model);
    const piece = chunk.choices[0]?.delta?.content;
    if (piece) deltas.push(piece);
  }
  return { deltas, models: [...models] };
}

// Tool calls pass through: the cascade checks them (a declared tool, arguments that fit it).
async function tools(): Promise<object> {
  const completion = await client.chat.completions.create({
    model,
    messages,
    tools: [
      {
        type: "function",
        function: {
          name: "get_weather",
          parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        },
      },
    ],
    tool_choice: "required",
  });
  const calls = completion.choices[0].message.tool_calls ?? [];
  return {
    model: completion.model,
    finishReason: completion.choices[0].finish_reason,
    calls: calls.map((c) => (c.type === "function" ? [c.function.name, JSON.parse(c.function.arguments)] : [c.type])),
  };
}

// Failures arrive as the client's own error classes, with OpenAI's error shape.
async function error(): Promise<object> {
  try {
    await client.chat.completions.create({ model, messages });
    return { error: null };
  } catch (err) {
    if (err instanceof OpenAI.APIError) {
      const body = err.error as { code?: string; reasons?: string[] } | undefined;
      return { error: err.constructor.name, status: err.status, code: body?.code, reasons: body?.reasons };
    }
    throw err;
  }
}

const scenarios: Record<string, () => Promise<object>> = { plain, stream, tools, error };
const name = process.argv[2] ?? "plain";
const run = scenarios[name];
if (run === undefined) {
  console.error(`unknown scenario ${name}; expected one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
console.log(JSON.stringify(await run()));
