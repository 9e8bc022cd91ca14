CREATE TABLE `channels` (
	`channel` text PRIMARY KEY NOT NULL,
	`checkout` text NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `order_lines` ADD `held` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `order_lines_sku_held` ON `order_lines` (`sku`,`held`);--> statement-breakpoint
ALTER TABLE `orders` ADD `holder` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `orders` ADD `status` text DEFAULT 'paid' NOT NULL;--> statement-breakpoint
ALTER TABLE `orders` ADD `pay_by` integer;--> statement-breakpoint
ALTER TABLE `orders` ADD `paid_at` integer;--> statement-breakpoint
ALTER TABLE `orders` ADD `cancelled_at` integer;--> statement-breakpoint
ALTER TABLE `orders` ADD `cancel_reason` text;--> statement-breakpoint
ALTER TABLE `orders` ADD `payment_url` text;--> statement-breakpoint
ALTER TABLE `orders` ADD `payment_instructions` text;--> statement-breakpoint
ALTER TABLE `orders` ADD `payment_reference` text;--> statement-breakpoint
ALTER TABLE `orders` ADD `needs_refund` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `orders_status_pay_by` ON `orders` (`status`,`pay_by`);--> statement-breakpoint
CREATE INDEX `orders_channel_status` ON `orders` (`channel`,`status`);--> statement-breakpoint
CREATE INDEX `orders_holder_status` ON `orders` (`channel`,`holder`,`status`);--> statement-breakpoint
CREATE INDEX `orders_payment_reference` ON `orders` (`payment_reference`);