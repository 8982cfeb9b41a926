//! `tidechat-mock-llm`: the mock LLM upstream as a standalone server.

use std::net::TcpListener;

use clap::Parser;
use tidechat_mock_llm::{server, Knobs, MockConfig};

/// Mock LLM upstream speaking the OpenAI Chat Completions
/// (`POST /v1/chat/completions`) and Anthropic Messages (`POST /v1/messages`)
/// wire formats, streaming and not.
///
/// The flags below are defaults. Each request can override any knob with an
/// `x-mock-<knob>` header (e.g. `x-mock-ttft-ms: 50`) or in its model name,
/// which wins: `"model": "mock?ttft_ms=50&chunks=64&gap_ms=20&fault=drop_after:5"`
/// (URL-encode values such as tool_args). Knob names are the flag names with
/// `_` instead of `-`.
///
/// Replies: text is "token0 token1 ... " (`chunks` words); usage is exact:
/// input_tokens = whitespace-separated words of all messages and the system
/// prompt, output_tokens = `chunks` (or `arg_pieces` for a tool call).
///
/// Other endpoints: `GET /__stats` (requests, completed, cancelled = bodies
/// abandoned by the client, dropped, stalled, status_faults) and
/// `GET /__last_request` (the last request body).
#[derive(Debug, Parser)]
#[command(name = "tidechat-mock-llm", version, verbatim_doc_comment)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "MOCK_LLM_BIND", default_value = "127.0.0.1:8089")]
    bind: String,
    /// Require this API key (Bearer for OpenAI, x-api-key for Anthropic).
    #[arg(long, env = "MOCK_LLM_API_KEY")]
    api_key: Option<String>,
    #[command(flatten)]
    knobs: Knobs,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let listener = TcpListener::bind(&cli.bind)?;
    eprintln!(
        "tidechat-mock-llm listening on http://{}",
        listener.local_addr()?
    );
    let (server, _stats) = server(
        listener,
        MockConfig {
            knobs: cli.knobs,
            api_key: cli.api_key,
        },
    )?;
    server.await
}
