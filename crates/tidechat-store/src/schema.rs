//! Diesel table definitions shared by both backends. Hand-written to match
//! `migrations/{postgres,sqlite}/*/up.sql`; the integration tests write and
//! read every table on both backends, which proves the two agree.

diesel::table! {
    organizations (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    workspaces (id) {
        id -> Text,
        org_id -> Text,
        name -> Text,
        default_persona_id -> Nullable<Text>,
        faq_version -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    personas (id) {
        id -> Text,
        org_id -> Text,
        workspace_id -> Text,
        name -> Text,
        system_prompt -> Text,
        model_id -> Text,
        temperature -> Double,
        max_output_tokens -> Integer,
        guardrails -> Text,
        fallback_reply -> Text,
        faq_threshold -> Double,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        redact_pii -> Bool,
        drift_threshold -> Nullable<Double>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        org_id -> Text,
        workspace_id -> Text,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        scope -> Text,
    }
}

diesel::table! {
    moderation_records (message_id, id) {
        id -> BigInt,
        message_id -> Text,
        org_id -> Text,
        stage -> Text,
        category -> Text,
        rule -> Text,
        action -> Text,
        excerpt -> Text,
    }
}

diesel::table! {
    ws_tickets (ticket_hash) {
        ticket_hash -> Text,
        org_id -> Text,
        api_key_id -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sites (id) {
        id -> Text,
        org_id -> Text,
        workspace_id -> Text,
        persona_id -> Text,
        site_key -> Text,
        name -> Text,
        allowed_origins -> Text,
        settings -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    widget_conversations (session_id) {
        session_id -> Text,
        org_id -> Text,
        site_id -> Text,
        visitor_key -> Text,
        mode -> Text,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        name -> Nullable<Text>,
        rating -> Nullable<BigInt>,
        rating_comment -> Nullable<Text>,
        blocked -> Bool,
        operator_read_seq -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    widget_message_ids (session_id, client_message_id) {
        session_id -> Text,
        client_message_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    proactive_messages (id) {
        id -> Text,
        org_id -> Text,
        site_id -> Text,
        content -> Text,
        delay_seconds -> BigInt,
        url_pattern -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    proactive_deliveries (proactive_id, visitor_key) {
        proactive_id -> Text,
        visitor_key -> Text,
        delivered_at -> Timestamp,
    }
}

diesel::table! {
    tools (id) {
        id -> Text,
        org_id -> Text,
        name -> Text,
        description -> Text,
        parameters -> Text,
        url -> Text,
        secret -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    limits (org_id, api_key_id) {
        org_id -> Text,
        api_key_id -> Text,
        requests_per_minute -> Nullable<BigInt>,
        max_concurrent_streams -> Nullable<BigInt>,
        monthly_tokens -> Nullable<BigInt>,
        monthly_cost_usd_micros -> Nullable<BigInt>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        org_id -> Text,
        workspace_id -> Text,
        persona_id -> Text,
        user_id -> Nullable<Text>,
        title -> Nullable<Text>,
        status -> Text,
        message_count -> BigInt,
        input_tokens -> BigInt,
        output_tokens -> BigInt,
        cost_usd_micros -> BigInt,
        next_seq -> BigInt,
        metadata -> Text,
        started_at -> Timestamp,
        last_active_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        external_id -> Nullable<Text>,
        drift_ewma -> Nullable<Double>,
    }
}

diesel::table! {
    end_users (id) {
        id -> Text,
        org_id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
    }
}

diesel::table! {
    messages (id) {
        id -> Text,
        session_id -> Text,
        org_id -> Text,
        seq -> BigInt,
        role -> Text,
        content -> Text,
        input_tokens -> BigInt,
        output_tokens -> BigInt,
        tokens_estimated -> Bool,
        model -> Text,
        latency_ms -> BigInt,
        cost_usd_micros -> BigInt,
        moderation_verdict -> Text,
        drift_score -> Double,
        status -> Text,
        created_at -> Timestamp,
        api_key_id -> Nullable<Text>,
        first_token_ms -> Nullable<BigInt>,
        original_content -> Nullable<Text>,
        citations -> Text,
        client_message_id -> Nullable<Text>,
        reply_to -> Nullable<Text>,
    }
}

diesel::table! {
    faq_entries (id) {
        id -> Text,
        org_id -> Text,
        workspace_id -> Text,
        question -> Text,
        answer -> Text,
        organization_id -> Nullable<Text>,
        tags -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    documents (id) {
        id -> Text,
        org_id -> Text,
        workspace_id -> Text,
        title -> Text,
        format -> Text,
        source_name -> Nullable<Text>,
        organization_id -> Nullable<Text>,
        text -> Text,
        text_chars -> BigInt,
        chunk_count -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    document_chunks (document_id, idx) {
        document_id -> Text,
        idx -> Integer,
        org_id -> Text,
        workspace_id -> Text,
        heading -> Text,
        content -> Text,
        organization_id -> Nullable<Text>,
    }
}

diesel::table! {
    knowledge_embeddings (item_id, model) {
        item_id -> Text,
        model -> Text,
        workspace_id -> Text,
        content_hash -> Text,
        vector -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    usage_events (id) {
        id -> Text,
        org_id -> Text,
        api_key_id -> Nullable<Text>,
        kind -> Text,
        model -> Text,
        input_tokens -> BigInt,
        cost_usd_micros -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    quota_reservations (id) {
        id -> Text,
        org_id -> Text,
        api_key_id -> Nullable<Text>,
        tokens -> BigInt,
        cost_usd_micros -> BigInt,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(workspaces -> organizations (org_id));
diesel::joinable!(document_chunks -> documents (document_id));
diesel::joinable!(personas -> workspaces (workspace_id));
diesel::joinable!(api_keys -> workspaces (workspace_id));
diesel::joinable!(sessions -> personas (persona_id));
diesel::joinable!(messages -> sessions (session_id));
diesel::joinable!(faq_entries -> workspaces (workspace_id));

diesel::allow_tables_to_appear_in_same_query!(
    organizations,
    workspaces,
    personas,
    api_keys,
    sessions,
    messages,
    faq_entries,
    server_secrets,
    end_users,
    limits,
    tools,
    moderation_records,
    ws_tickets,
    sites,
    widget_conversations,
    widget_message_ids,
    proactive_messages,
    proactive_deliveries,
    documents,
    document_chunks,
    knowledge_embeddings,
    usage_events,
    quota_reservations,
);
