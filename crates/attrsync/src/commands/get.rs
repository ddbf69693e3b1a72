//! `attrsync get CONVERSATION_ID`.

use std::io::Write;

use crate::cli::GetArgs;
use crate::exit::Exit;
use crate::render::{Style, call::call_table};
use crate::settings::Connection;
use crate::ui::Ui;

pub async fn run(args: GetArgs, connection: Connection, ui: Ui) -> anyhow::Result<Exit> {
    let client = connection.connect(ui).await?;
    let call = client.get_call(&args.conversation_id).await?.value;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &call)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", call_table(&call, Style { color: ui.color }))?;
    }
    Ok(Exit::Success)
}
