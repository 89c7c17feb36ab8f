//! What the stand-in app keeps: dialogs and their messages, in memory. The attachments of a
//! message are the rows the gateway's commit answered with, as a real app would store them.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dialog {
    pub id: String,
    pub title: String,
    pub owner: String,
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub author: String,
    pub text: String,
    pub sent_at: String,
    pub attachments: Vec<Value>,
}
