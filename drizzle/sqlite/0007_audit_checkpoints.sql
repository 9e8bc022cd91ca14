CREATE TABLE `audit_checkpoints` (
	`id` integer PRIMARY KEY NOT NULL,
	`ledger_id` integer NOT NULL,
	`at` integer NOT NULL,
	`fingerprint` text NOT NULL,
	`sku_totals` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `cart_lines_holding` ON `cart_lines` (`cart_id`) WHERE "cart_lines"."held" != 0;--> statement-breakpoint
CREATE INDEX `order_lines_holding` ON `order_lines` (`order_id`) WHERE "order_lines"."held" != 0;