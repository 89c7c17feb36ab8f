//! The gateway's own routes: which module answers each one.

use pingora::prelude::*;
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use super::respond::Answer;
use super::{read, respond, upload, Gateway};
use crate::authz::Access;
use crate::error::GatewayError;
use crate::route::Route;

/// Answer a request under the attachments prefix; never forwarded to the app.
pub async fn serve(gw: &Gateway, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
    let target = match ctx.route.clone() {
        Route::LinkedRead {
            dialog_id,
            attachment_id,
        } => read::ReadTarget {
            access: Access::Linked,
            dialog_id: Some(dialog_id),
            attachment_id,
        },
        Route::StagedRead { attachment_id } => read::ReadTarget {
            access: Access::Staged,
            dialog_id: None,
            attachment_id,
        },
        Route::Upload => {
            let answer = upload::stage(gw, session, ctx).await;
            return reply(session, ctx, answer).await;
        }
        Route::StagedDelete { attachment_id } => {
            ctx.attachment_id = Some(attachment_id.clone());
            let answer = upload::discard(gw, session, ctx, &attachment_id).await;
            return reply(session, ctx, answer).await;
        }
        Route::MethodNotAllowed { allow } => {
            return respond::answer_error(session, ctx, GatewayError::MethodNotAllowed { allow })
                .await;
        }
        Route::BadRequest => {
            return respond::answer_error(session, ctx, GatewayError::BadRequest("malformed_path"))
                .await;
        }
        Route::BadTarget => {
            return respond::answer_error(session, ctx, GatewayError::BadRequest("bad_target"))
                .await;
        }
        Route::NotFound | Route::Passthrough => {
            return respond::answer_error(session, ctx, GatewayError::NotFound("no_route")).await;
        }
    };
    ctx.attachment_id = Some(target.attachment_id.clone());
    read::serve(gw, session, ctx, target).await
}

/// Write the answer of an upload or discard: its JSON, or the error's.
async fn reply(
    session: &mut Session,
    ctx: &mut RequestCtx,
    answer: Result<Answer, GatewayError>,
) -> Result<()> {
    match answer {
        Ok(answer) => {
            if ctx.outcome.is_empty() {
                ctx.outcome = "stored";
            }
            respond::json(session, &answer, &ctx.request_id).await?;
        }
        Err(err) => respond::answer_error(session, ctx, err).await?,
    }
    Ok(())
}
