//! What meshd's clients of AWS services (Cloud Map, ACM, ACM Private CA) share: the AWS
//! SDK's configuration with the standard credentials chain, in the region asked for.

/// The SDK configuration for `region`, credentials from the standard AWS chain.
pub async fn config(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .load()
        .await
}
