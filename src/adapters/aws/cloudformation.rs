//! A deployed stack's outputs, read with CloudFormation's DescribeStacks: the operator's CLI
//! takes `--stack NAME` instead of the queue, tables and secrets copied by hand.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("no stack named {0} in this account and region (give --region, or check the name with `aws cloudformation list-stacks`)")]
    NotFound(String),
    #[error("cannot describe stack {stack}: {message}")]
    Describe { stack: String, message: String },
}

/// The outputs of `stack` (name or id), by key.
pub async fn stack_outputs(
    client: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<BTreeMap<String, String>, StackError> {
    let described = client
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            let message = aws_sdk_cloudformation::error::DisplayErrorContext(&e).to_string();
            // CloudFormation answers a ValidationError "Stack with id X does not exist".
            if message.contains("does not exist") {
                StackError::NotFound(stack.to_owned())
            } else {
                StackError::Describe {
                    stack: stack.to_owned(),
                    message,
                }
            }
        })?;
    let found = described
        .stacks()
        .first()
        .ok_or_else(|| StackError::NotFound(stack.to_owned()))?;
    Ok(found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect())
}
