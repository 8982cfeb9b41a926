//! The chats REST + WebSocket surface, with a real WebSocket client.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::support::TestApp;

backends!(
    rest_chats_crud_and_pagination,
    websocket_events_in_order,
    websocket_creates_chats_and_users,
    websocket_refuses_bad_connections,
    websocket_survives_malformed_frames,
    websocket_queues_messages_in_order,
    websocket_limits_message_rate,
    websocket_replays_missed_messages,
    websocket_tickets_are_single_use,
    websocket_connection_cap,
);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, query: &str) -> Socket {
    let url = format!(
        "{}/ws/chat?{query}",
        app.base.replacen("http://", "ws://", 1)
    );
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    socket
}

/// The next JSON event (skipping pings); panics on close or timeout.
async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("timed out")
            .expect("closed")
            .expect("frame");
        match frame {
            Frame::Text(text) => return serde_json::from_str(&text).expect("JSON event"),
            Frame::Ping(_) | Frame::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads until the server closes; returns the events seen and the close code.
async fn until_close(socket: &mut Socket) -> (Vec<Value>, Option<u16>) {
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("timed out")
        {
            Some(Ok(Frame::Text(text))) => events.push(serde_json::from_str(&text).unwrap()),
            Some(Ok(Frame::Close(frame))) => return (events, frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (events, None),
        }
    }
}

async fn send(socket: &mut Socket, content: &str) {
    socket
        .send(Frame::Text(json!({"content": content}).to_string().into()))
        .await
        .unwrap();
}

/// Reads one full reply: received … ended. Returns the event types in order and the ended message.
async fn read_reply(socket: &mut Socket) -> (Vec<String>, Value, Value) {
    let mut kinds = Vec::new();
    let mut received = Value::Null;
    loop {
        let event = next_event(socket).await;
        let kind = event["type"].as_str().unwrap().to_owned();
        kinds.push(kind.clone());
        match kind.as_str() {
            "message_received" => received = event["message"].clone(),
            "message_stream_ended" => return (kinds, received, event["message"].clone()),
            "error" => panic!("error event: {event}"),
            _ => {}
        }
    }
}

async fn create_chat(app: &TestApp, user: &str) -> String {
    let res = app
        .client
        .post(app.url("/api/v1/chats/"))
        .header("x-api-key", &app.key)
        .json(&json!({"user_id": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let chat: Value = res.json().await.unwrap();
    chat["id"].as_str().unwrap().to_owned()
}

fn key_query(app: &TestApp, user: &str) -> String {
    format!("api_key={}&user_id={user}", app.key)
}

async fn rest_chats_crud_and_pagination(app: TestApp) {
    let rest = |m: reqwest::Method, p: &str| {
        app.client
            .request(m, app.url(p))
            .header("x-api-key", &app.key)
    };
    use reqwest::Method as M;
    let res = rest(M::POST, "/api/v1/chats/")
        .json(&json!({"title": "no user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_parameter");
    assert!(!err["error"]["details"].as_str().unwrap().is_empty());
    let res = rest(M::POST, "/api/v1/chats/")
        .json(&json!({"user_id": "u-1", "title": "Help", "metadata": {"source": "app"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let chat: Value = res.json().await.unwrap();
    let id = chat["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            chat["user_id"].as_str(),
            chat["title"].as_str(),
            chat["status"].as_str()
        ),
        (Some("u-1"), Some("Help"), Some("active"))
    );
    // One engine: the chat is a /v1 session.
    for q in [
        "How do I reset my password?",
        "Do you offer refunds?",
        "Where can I download my invoices?",
    ] {
        let (status, _) = app
            .post(
                &format!("/v1/chat/sessions/{id}/messages"),
                json!({"userText": q}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let page = |q: &str| {
        let url = format!("/api/v1/chats/{id}/messages{q}");
        let req = app.client.get(app.url(&url)).bearer_auth(&app.key);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = page("").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            first["total"].as_i64(),
            first["offset"].as_i64(),
            first["limit"].as_i64(),
            first["has_more"].as_bool()
        ),
        (Some(6), Some(0), Some(50), Some(false))
    );
    let (_, p1) = page("?offset=0&limit=4").await;
    assert_eq!(
        (
            p1["messages"].as_array().unwrap().len(),
            p1["has_more"].as_bool()
        ),
        (4, Some(true))
    );
    let (_, p2) = page("?offset=4&limit=4").await;
    assert_eq!(
        (
            p2["messages"].as_array().unwrap().len(),
            p2["has_more"].as_bool(),
            p2["total"].as_i64()
        ),
        (2, Some(false), Some(6))
    );
    let (_, exact) = page("?offset=2&limit=4").await;
    assert_eq!(
        exact["has_more"], false,
        "the last page ends exactly at the total"
    );
    let (_, past) = page("?offset=6").await;
    assert_eq!(
        (
            past["messages"].as_array().unwrap().len(),
            past["has_more"].as_bool()
        ),
        (0, Some(false))
    );
    let (_, desc) = page("?order=desc&limit=1").await;
    assert_eq!(desc["messages"][0]["role"], "assistant");
    assert_eq!(
        desc["messages"][0]["content"],
        "Under Settings, Billing, Invoices."
    );
    for q in [
        "?offset=-1",
        "?limit=0",
        "?limit=201",
        "?limit=abc",
        "?order=sideways",
        "?offset=1.5",
    ] {
        let (status, err) = page(q).await;
        assert_eq!(status, 400, "{q}");
        assert_eq!(err["error"]["code"], "invalid_parameter", "{q}");
    }
    let res = rest(M::GET, "/api/v1/chats/user/u-1").send().await.unwrap();
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["chats"].as_array().unwrap().len(), 1);
    assert_eq!(list["chats"][0]["message_count"], 6);
    // Other tenants see nothing.
    let other = app.other_org().await;
    for path in [
        format!("/api/v1/chats/{id}"),
        format!("/api/v1/chats/{id}/messages"),
    ] {
        let res = app
            .client
            .get(app.url(&path))
            .header("x-api-key", &other.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "chat_not_found");
    }
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/chats/{id}")))
        .header("x-api-key", &other.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Delete removes the chat and its messages.
    let res = rest(M::DELETE, &format!("/api/v1/chats/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    for path in [
        format!("/api/v1/chats/{id}"),
        format!("/api/v1/chats/{id}/messages"),
    ] {
        assert_eq!(
            rest(M::GET, &path).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
    let (status, _) = app.get(&format!("/v1/chat/sessions/{id}/messages")).await;
    assert_eq!(status, 404);
    let res = app
        .client
        .get(app.url("/api/v1/chats/user/u-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "unauthenticated"
    );
}

async fn websocket_events_in_order(app: TestApp) {
    let chat = create_chat(&app, "alice").await;
    let mut ws = connect(
        &app,
        &format!("{}&chat_id={chat}", key_query(&app, "alice")),
    )
    .await;
    let hello = next_event(&mut ws).await;
    assert_eq!(hello["type"], "connection_established");
    assert_eq!(
        (hello["chat_id"].as_str(), hello["chat_created"].as_bool()),
        (Some(chat.as_str()), Some(false))
    );
    send(&mut ws, "How do I reset my password?").await;
    let (kinds, received, ended) = read_reply(&mut ws).await;
    assert_eq!(kinds[0], "message_received");
    assert_eq!(kinds[1], "message_stream_started");
    assert!(
        kinds[2..kinds.len() - 1]
            .iter()
            .all(|k| k == "message_stream_token")
            && kinds.len() >= 4,
        "{kinds:?}"
    );
    assert!(received["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(received["content"], "How do I reset my password?");
    assert_eq!(ended["content"], "Use the reset link on the sign-in page.");
    assert_eq!(ended["moderation_verdict"], "allowed");
    assert!(ended["output_tokens"].as_i64().unwrap() > 0);
    assert!(ended["id"].as_str().unwrap().starts_with("msg_"));
    // Visible through /v1 at once.
    let (_, history) = app.get(&format!("/v1/chat/sessions/{chat}/messages")).await;
    let ids: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            received["id"].as_str().unwrap(),
            ended["id"].as_str().unwrap()
        ]
    );
}

async fn websocket_creates_chats_and_users(app: TestApp) {
    let mut ws = connect(&app, &key_query(&app, "new-user")).await;
    let hello = next_event(&mut ws).await;
    assert_eq!(hello["chat_created"], true);
    let chat = hello["chat_id"].as_str().unwrap().to_owned();
    let created = next_event(&mut ws).await;
    assert_eq!(
        created,
        json!({"type": "user_created", "user_id": "new-user"})
    );
    drop(ws);
    let mut again = connect(
        &app,
        &format!("{}&chat_id={chat}", key_query(&app, "new-user")),
    )
    .await;
    assert_eq!(
        next_event(&mut again).await["type"],
        "connection_established"
    );
    send(&mut again, "Do you offer refunds?").await;
    // No second user_created: the next event is about the message.
    assert_eq!(next_event(&mut again).await["type"], "message_received");
    let res = app
        .client
        .get(app.url("/api/v1/chats/user/new-user"))
        .header("x-api-key", &app.key)
        .send()
        .await
        .unwrap();
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["chats"][0]["id"], chat.as_str());
}

async fn websocket_refuses_bad_connections(app: TestApp) {
    let chat = create_chat(&app, "bob").await;
    let other = app.other_org().await;
    let cases = [
        (
            format!("api_key=tc_nope&user_id=bob&chat_id={chat}"),
            4001,
            "unauthenticated",
        ),
        (
            format!("user_id=bob&chat_id={chat}"),
            4001,
            "unauthenticated",
        ),
        (
            format!("api_key={}&chat_id={chat}", app.key),
            4000,
            "missing_parameter",
        ),
        (
            format!("{}&chat_id={chat}", key_query(&app, "mallory")),
            4004,
            "chat_not_found",
        ),
        (
            format!("api_key={}&user_id=bob&chat_id={chat}", other.api_key),
            4004,
            "chat_not_found",
        ),
        (
            format!(
                "{}&chat_id=chs_01jd3x8y6q1v0w2r7k9m4n5p6t",
                key_query(&app, "bob")
            ),
            4004,
            "chat_not_found",
        ),
    ];
    for (query, code, error) in cases {
        let mut ws = connect(&app, &query).await;
        let (events, close) = until_close(&mut ws).await;
        assert_eq!(close, Some(code), "{query}: {events:?}");
        assert_eq!(events.last().unwrap()["type"], "error", "{query}");
        assert_eq!(events.last().unwrap()["code"], error, "{query}");
    }
    let (status, _) = app
        .post(&format!("/v1/chat/sessions/{chat}/end"), json!({}))
        .await;
    assert_eq!(status, 200);
    let mut ws = connect(&app, &format!("{}&chat_id={chat}", key_query(&app, "bob"))).await;
    let (events, close) = until_close(&mut ws).await;
    assert_eq!(
        (close, events[0]["code"].as_str()),
        (Some(4009), Some("chat_not_active"))
    );
}

async fn websocket_survives_malformed_frames(app: TestApp) {
    let mut ws = connect(&app, &key_query(&app, "carol")).await;
    next_event(&mut ws).await;
    next_event(&mut ws).await; // user_created
    let bad: Vec<Frame> = vec![
        Frame::Text("not json".into()),
        Frame::Text(r#"{"text": "hi"}"#.into()),
        Frame::Text(r#"{"content": "   "}"#.into()),
        Frame::Text(r#"{"content": 5}"#.into()),
        Frame::Binary(vec![0, 159, 146, 150].into()),
        Frame::Text(json!({"content": "x".repeat(20_000)}).to_string().into()),
    ];
    for frame in bad {
        let what = format!("{frame:?}").chars().take(60).collect::<String>();
        ws.send(frame).await.unwrap();
        let event = next_event(&mut ws).await;
        assert_eq!(event["type"], "error", "{what}");
        assert!(
            ["invalid_message", "message_too_large"].contains(&event["code"].as_str().unwrap()),
            "{what}: {event}"
        );
        assert!(!event["details"].as_str().unwrap().is_empty());
    }
    // Still usable.
    send(&mut ws, "Do you offer refunds?").await;
    let (_, _, ended) = read_reply(&mut ws).await;
    assert_eq!(ended["content"], "Yes, within 14 days of purchase.");
}

async fn websocket_queues_messages_in_order(app: TestApp) {
    let mut ws = connect(&app, &key_query(&app, "dave")).await;
    next_event(&mut ws).await;
    next_event(&mut ws).await;
    let questions = [
        "How do I reset my password?",
        "Do you offer refunds?",
        "Where can I download my invoices?",
    ];
    for q in questions {
        send(&mut ws, q).await;
    }
    let answers = [
        "Use the reset link on the sign-in page.",
        "Yes, within 14 days of purchase.",
        "Under Settings, Billing, Invoices.",
    ];
    for (q, a) in questions.iter().zip(answers) {
        let (kinds, received, ended) = read_reply(&mut ws).await;
        assert_eq!(received["content"], *q, "replies come in the order asked");
        assert_eq!(ended["content"], a);
        assert_eq!(
            kinds.iter().filter(|k| *k == "message_received").count(),
            1,
            "never interleaved: {kinds:?}"
        );
    }
}

async fn websocket_limits_message_rate(app: TestApp) {
    let mut ws = connect(&app, &key_query(&app, "erin")).await;
    next_event(&mut ws).await;
    next_event(&mut ws).await;
    for _ in 0..14 {
        send(&mut ws, "Do you offer refunds?").await;
    }
    let mut limited = 0;
    let mut replies = 0;
    while limited + replies < 14 {
        let event = next_event(&mut ws).await;
        match event["type"].as_str().unwrap() {
            "error" => {
                assert_eq!(event["code"], "rate_limited", "{event}");
                limited += 1;
            }
            "message_stream_ended" => replies += 1,
            _ => {}
        }
    }
    assert!(
        limited >= 4 && replies <= 10,
        "limited {limited}, replies {replies}"
    );
}

async fn websocket_replays_missed_messages(app: TestApp) {
    // A slow persona, so the connection can drop mid-reply.
    let (status, persona) = app
        .post(
            "/v1/personas",
            json!({"name": "Slow", "modelId": "slow-short"}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, session) = app
        .post(
            "/v1/chat/sessions",
            json!({"personaId": persona["personaId"], "userId": "frank"}),
        )
        .await;
    let chat = session["sessionId"].as_str().unwrap().to_owned();
    let mut ws = connect(
        &app,
        &format!("{}&chat_id={chat}", key_query(&app, "frank")),
    )
    .await;
    next_event(&mut ws).await;
    next_event(&mut ws).await; // user_created
    send(&mut ws, "tell me something").await;
    let mut received = Value::Null;
    loop {
        let event = next_event(&mut ws).await;
        if event["type"] == "message_received" {
            received = event["message"].clone();
        }
        if event["type"] == "message_stream_token" {
            break;
        }
    }
    drop(ws); // the connection drops mid-reply
              // The reply is finished and stored anyway; reconnecting replays it.
    let mut reply = Value::Null;
    for _ in 0..100 {
        let (_, history) = app.get(&format!("/v1/chat/sessions/{chat}/messages")).await;
        if let Some(r) = history["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "assistant")
        {
            reply = r.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reply["status"], "complete", "{reply}");
    let last = received["id"].as_str().unwrap();
    let mut ws = connect(
        &app,
        &format!(
            "{}&chat_id={chat}&last_message_id={last}",
            key_query(&app, "frank")
        ),
    )
    .await;
    assert_eq!(next_event(&mut ws).await["type"], "connection_established");
    let missed = next_event(&mut ws).await;
    assert_eq!(missed["type"], "missed_messages");
    let messages = missed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["id"], reply["messageId"]);
    assert_eq!(messages[0]["content"], reply["content"]);
}

async fn websocket_tickets_are_single_use(app: TestApp) {
    let res = app
        .client
        .post(app.url("/api/v1/ws-tickets"))
        .header("x-api-key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let ticket: Value = res.json().await.unwrap();
    let t = ticket["ticket"].as_str().unwrap().to_owned();
    assert!(!t.contains(&app.key));
    let mut ws = connect(&app, &format!("ticket={t}&user_id=gina")).await;
    assert_eq!(next_event(&mut ws).await["type"], "connection_established");
    let mut again = connect(&app, &format!("ticket={t}&user_id=gina")).await;
    let (events, close) = until_close(&mut again).await;
    assert_eq!(
        (close, events[0]["code"].as_str()),
        (Some(4001), Some("unauthenticated"))
    );
    let res = app
        .client
        .post(app.url("/api/v1/ws-tickets"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

async fn websocket_connection_cap(app: TestApp) {
    let (status, _) = app
        .put("/v1/limits", json!({"maxConcurrentStreams": 1}))
        .await;
    assert_eq!(status, 200);
    let mut first = connect(&app, &key_query(&app, "hank")).await;
    assert_eq!(
        next_event(&mut first).await["type"],
        "connection_established"
    );
    let mut second = connect(&app, &key_query(&app, "hank")).await;
    let (events, close) = until_close(&mut second).await;
    assert_eq!(close, Some(u16::from(CloseCode::from(4029))));
    assert_eq!(events[0]["code"], "too_many_connections");
    first.close(None).await.unwrap();
    drop(first);
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut third = connect(&app, &key_query(&app, "hank")).await;
        if next_event(&mut third).await["type"] == "connection_established" {
            ok = true;
            break;
        }
    }
    assert!(ok, "the slot is released when the connection closes");
}
