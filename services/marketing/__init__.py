"""Marketing ops: user events, segments, campaigns, incentives, experiments, communications."""
