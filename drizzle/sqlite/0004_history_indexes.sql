CREATE INDEX `oauth_grants_listing` ON `oauth_grants` (("revoked_at" IS NOT NULL),"created_at" DESC,`id`);--> statement-breakpoint
CREATE INDEX `orders_created` ON `orders` (`created_at`,`channel`,`currency`,`total_minor`);--> statement-breakpoint
CREATE INDEX `stock_movements_channel_id` ON `stock_movements` (`channel`,`id`);--> statement-breakpoint
CREATE INDEX `stock_movements_kind_id` ON `stock_movements` (`kind`,`id`);